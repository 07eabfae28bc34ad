import type { AccountCreatedPayload } from '../contract/payloads.js';
import type { AccountCreatedResult } from '../contract/results.js';
import { lockUsername, upsertAccountUnlessUsernameTaken } from '../db/accounts.js';
import type { Queryable, Tx } from '../db/client.js';
import type { JobStamp } from '../db/history.js';
import { attachLearners, detachLearnersExcept, learnerId, lockLearners, type SentLearner } from '../db/learners.js';
import { type LearnerCoursePair, waitingCoursesOfIdentities } from '../db/program-course-enrollments.js';
import { programEnrollmentsOfAccounts, waitingEnrollmentsOfLearners } from '../db/program-enrollments.js';
import { JobRejectedError } from '../domain/errors.js';
import { chooseLinks } from '../domain/one-enrollment-per-program.js';
import { compareCodePoints } from '../domain/order.js';
import type { Logger } from '../log.js';
import { logKeptWaiting, realizeProgramEnrollments } from './linking.js';

/**
 * The event's identities as learners (one per learner: the event may name the same one twice in
 * different cases), and the courses of their waiting PEs, whose learner-course locks it takes.
 */
export async function accountCreatedLearners(
  sql: Queryable,
  payload: AccountCreatedPayload,
): Promise<{ identities: SentLearner[]; pairs: LearnerCoursePair[] }> {
  const sent = payload.identities.map((i) => ({
    organizationKey: i.organization_key,
    studentKey: i.external_user_key,
  }));
  const identities: SentLearner[] = [];
  const pairs: LearnerCoursePair[] = [];
  const seen = new Set<string>();
  for (const row of await waitingCoursesOfIdentities(sql, sent)) {
    const learner = { ...sent[row.n - 1]!, studentKeyLower: row.lower };
    if (row.courseKey !== null) pairs.push({ ...learner, courseKey: row.courseKey });
    if (seen.has(learnerId(learner))) continue;
    seen.add(learnerId(learner));
    identities.push(learner);
  }
  return { identities, pairs };
}

/**
 * `account-created` (docs/rules.md rule 9): records the account and makes the event's identities
 * its learners (an identity moves to the account the LMS now names; identities the event no longer
 * lists are forgotten), then links every waiting PE of those learners, oldest first, unless the
 * account already has a PE in that program. The caller runs it in one transaction.
 */
export async function recordAccount(
  tx: Tx,
  payload: AccountCreatedPayload,
  identities: readonly SentLearner[],
  stamp: JobStamp,
  log: Logger,
): Promise<AccountCreatedResult> {
  // Statements sent together go in one round trip and run in the order sent: the username and the
  // learners are locked before the account is recorded, and the account before the learners
  // become its. The username's lock orders this event with explicit links to that username.
  const [, , holder] = await Promise.all([
    lockUsername(tx, payload.username, 'exclusive'),
    lockLearners(tx, identities),
    upsertAccountUnlessUsernameTaken(tx, {
      userId: payload.user_id,
      username: payload.username,
      email: payload.email ?? null,
    }),
  ]);
  if (holder !== null)
    throw new JobRejectedError(`username of user_id ${payload.user_id} already belongs to user_id ${holder}`);
  const [, , waiting, held] = await Promise.all([
    detachLearnersExcept(tx, payload.user_id, identities),
    attachLearners(tx, payload.user_id, identities),
    waitingEnrollmentsOfLearners(tx, identities, null),
    programEnrollmentsOfAccounts(tx, [payload.user_id], null),
  ]);
  const { links, keptWaiting } = chooseLinks(
    waiting.map((pe) => ({ peId: pe.id, programUuid: pe.programUuid, userId: payload.user_id })),
    held,
  );
  logKeptWaiting(log, keptWaiting);
  const courseKeys = await realizeProgramEnrollments(tx, links, stamp, log);
  const linked = waiting
    .filter((pe) => courseKeys.has(pe.id))
    .map((pe) => ({ program_uuid: pe.programUuid, student_key: pe.studentKey, course_keys: courseKeys.get(pe.id)! }))
    .sort(
      (a, b) => compareCodePoints(a.program_uuid, b.program_uuid) || compareCodePoints(a.student_key, b.student_key),
    );
  if (linked.length) log.info({ user: payload.user_id, linked: linked.length }, 'waiting enrollments linked');
  return { linked };
}
