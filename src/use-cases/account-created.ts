import type { AccountCreatedPayload } from '../contract/payloads.js';
import type { AccountCreatedResult } from '../contract/results.js';
import { lockUsernames, upsertAccountsUnlessUsernameTaken } from '../db/accounts.js';
import type { Queryable, Tx } from '../db/client.js';
import type { AccountStamps, JobStamp } from '../db/history.js';
import { attachLearners, detachLearnersExcept, learnerId, lockLearners, type SentLearner } from '../db/learners.js';
import { type LearnerCoursePair, waitingCoursesOfIdentities } from '../db/program-course-enrollments.js';
import { programEnrollmentsOfAccounts, waitingEnrollmentsOfLearners } from '../db/program-enrollments.js';
import { JobRejectedError } from '../domain/errors.js';
import { chooseLinks } from '../domain/one-enrollment-per-program.js';
import { compareCodePoints } from '../domain/order.js';
import type { Logger } from '../log.js';
import { logKeptWaiting, realizeProgramEnrollments } from './linking.js';

/** An event's learners: what it links, and the learner-course pairs it locks. */
export interface AccountEventLearners {
  /** The event's identities as learners (one per learner: the event may name one twice in different cases). */
  identities: SentLearner[];
  /** The courses of their waiting PEs, whose learner-course locks the event takes. */
  pairs: LearnerCoursePair[];
}

/** Each event's learners (`AccountEventLearners`), in the order given, read in one round trip. */
export async function accountCreatedLearners(
  sql: Queryable,
  payloads: readonly AccountCreatedPayload[],
): Promise<AccountEventLearners[]> {
  const sent = payloads.flatMap((p) =>
    p.identities.map((i) => ({ organizationKey: i.organization_key, studentKey: i.external_user_key })),
  );
  // The position of each sent identity's event.
  const eventOf = payloads.flatMap((p, e) => p.identities.map(() => e));
  const learners = payloads.map((): AccountEventLearners => ({ identities: [], pairs: [] }));
  const seen = new Set<string>();
  for (const row of await waitingCoursesOfIdentities(sql, sent)) {
    const event = eventOf[row.n - 1]!;
    const learner = { ...sent[row.n - 1]!, studentKeyLower: row.lower };
    if (row.courseKey !== null) learners[event]!.pairs.push({ ...learner, courseKey: row.courseKey });
    const id = `${event}\u001f${learnerId(learner)}`;
    if (seen.has(id)) continue;
    seen.add(id);
    learners[event]!.identities.push(learner);
  }
  return learners;
}

/** One `account-created` event, with its learners (`accountCreatedLearners`), stamp and log. */
export interface AccountEvent {
  payload: AccountCreatedPayload;
  identities: readonly SentLearner[];
  stamp: JobStamp;
  log: Logger;
}

/**
 * `account-created` (docs/rules.md rule 9), for one event or several independent ones at once, in
 * the same statements: records each account and makes each event's identities its learners (an
 * identity moves to the account the LMS now names; identities the event no longer lists are
 * forgotten), then links every waiting PE of those learners, oldest first, unless the account
 * already has a PE in that program. The caller runs it in one transaction; returns each event's
 * result, in the order given.
 *
 * Independent: no two of the events share a user_id, a username or a learner, so that applying
 * them together is applying them one after the other (in any order). An event whose username
 * another account holds is rejected, and the transaction with it: the caller applies the others
 * without it.
 */
export async function recordAccounts(
  tx: Tx,
  events: readonly AccountEvent[],
  log: Logger,
): Promise<AccountCreatedResult[]> {
  const learners = events.flatMap((e) => e.identities);
  const userIds = events.map((e) => e.payload.user_id);
  // Statements sent together go in one round trip and run in the order sent: the usernames and the
  // learners are locked before the accounts are recorded, and the accounts before the learners
  // become theirs. A username's lock orders its event with explicit links to that username.
  const [, , holders] = await Promise.all([
    lockUsernames(
      tx,
      events.map((e) => e.payload.username),
    ),
    lockLearners(tx, learners),
    upsertAccountsUnlessUsernameTaken(
      tx,
      events.map((e) => ({ userId: e.payload.user_id, username: e.payload.username, email: e.payload.email ?? null })),
    ),
  ]);
  for (const userId of userIds) {
    const holder = holders.get(userId);
    if (holder !== undefined)
      throw new JobRejectedError(`username of user_id ${userId} already belongs to user_id ${holder}`);
  }
  const accountOf = new Map(events.flatMap((e) => e.identities.map((l) => [learnerId(l), e.payload.user_id] as const)));
  const [, , waiting, held] = await Promise.all([
    detachLearnersExcept(tx, userIds, learners),
    attachLearners(
      tx,
      learners.map((l) => ({ ...l, userId: accountOf.get(learnerId(l))! })),
    ),
    waitingEnrollmentsOfLearners(tx, learners, null),
    programEnrollmentsOfAccounts(tx, userIds, null),
  ]);
  const userOfPe = new Map(
    waiting.map((pe) => [
      pe.id,
      accountOf.get(learnerId({ organizationKey: pe.organizationKey, studentKeyLower: pe.lower }))!,
    ]),
  );
  const { links, keptWaiting } = chooseLinks(
    waiting.map((pe) => ({ peId: pe.id, programUuid: pe.programUuid, userId: userOfPe.get(pe.id)! })),
    held,
  );
  const eventOf = new Map(events.map((e) => [e.payload.user_id, e]));
  for (const e of events)
    logKeptWaiting(
      e.log,
      keptWaiting.filter((k) => k.userId === e.payload.user_id),
    );
  const stamps: AccountStamps = {
    recordEvents: events[0]!.stamp.recordEvents,
    of: (userId) => eventOf.get(userId)!.stamp,
  };
  const courseKeys = await realizeProgramEnrollments(tx, links, stamps, events.length === 1 ? events[0]!.log : log);
  return events.map((e) => {
    const linked = waiting
      .filter((pe) => courseKeys.has(pe.id) && userOfPe.get(pe.id) === e.payload.user_id)
      .map((pe) => ({ program_uuid: pe.programUuid, student_key: pe.studentKey, course_keys: courseKeys.get(pe.id)! }))
      .sort(
        (a, b) => compareCodePoints(a.program_uuid, b.program_uuid) || compareCodePoints(a.student_key, b.student_key),
      );
    if (linked.length) e.log.info({ user: e.payload.user_id, linked: linked.length }, 'waiting enrollments linked');
    return { linked };
  });
}
