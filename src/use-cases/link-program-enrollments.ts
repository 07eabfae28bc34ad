import type { LinkProgramEnrollmentsPayload } from '../contract/payloads.js';
import { accountIdOfUsername, lockUsername } from '../db/accounts.js';
import type { Queryable, Tx } from '../db/client.js';
import type { JobStamp } from '../db/history.js';
import { attachLearners, lockLearners, lowerKeys } from '../db/learners.js';
import { coursePairsOfLearners } from '../db/program-course-enrollments.js';
import { programEnrollmentsOfAccounts, programEnrollmentsOfKeys } from '../db/program-enrollments.js';
import { checkLink, linkErrors } from '../domain/explicit-links.js';
import type { Program } from '../domain/program.js';
import type { SentRecord } from '../domain/write-results.js';
import type { Logger } from '../log.js';
import type { ChunkedWork } from './chunked-work.js';
import { realizeProgramEnrollments, unlinkProgramEnrollment } from './linking.js';

export interface LinkRecord extends SentRecord {
  username: string;
}

/**
 * `link-program-enrollments` (docs/rules.md rule 10): each link alone, in its own transaction, so
 * one failing key leaves the others linked (as Open edX does). Relinking first unlinks the previous
 * account. A link also makes the account known for the learner, as `account-created` would,
 * without touching the learner's other waiting PEs. Each key's outcome is its own chunk in the
 * ledger, so a run after a crash skips it. The results are the errors, by key.
 */
export async function linksWrite(
  sql: Queryable,
  program: Program,
  payload: LinkProgramEnrollmentsPayload,
  stamp: JobStamp,
  log: Logger,
): Promise<ChunkedWork<LinkRecord>> {
  const lowers = await lowerKeys(
    sql,
    payload.links.map((l) => l.student_key),
  );
  const org = program.organizationKey;
  return {
    records: payload.links.map((l, index) => ({
      index,
      sent: l.student_key,
      lower: lowers[index]!,
      username: l.username,
    })),
    maxChunk: 1,
    tables: [],
    duplicated: linkErrors.givenTwice,
    failed: (err) => `${err.name}: ${err.message}`,
    lockPairs: (db, chunk) =>
      coursePairsOfLearners(
        db,
        chunk.map((l) => ({ organizationKey: org, studentKeyLower: l.lower })),
        { programUuid: program.programUuid, waitingOnly: false },
      ),
    async applyChunk(tx, chunk) {
      const errors: Record<string, string> = Object.create(null);
      for (const link of chunk) {
        const error = await applyLink(tx, program, link, stamp, log);
        if (error !== null) errors[link.sent] = error;
      }
      return errors;
    },
  };
}

/** Applies one link; returns its error, or null when it is linked. */
async function applyLink(
  tx: Tx,
  program: Program,
  link: LinkRecord,
  stamp: JobStamp,
  log: Logger,
): Promise<string | null> {
  const learner = { organizationKey: program.organizationKey, studentKeyLower: link.lower };
  // The username before the learner, as account-created takes them: the link sees the account
  // exactly when the event that recorded it committed first.
  await lockUsername(tx, link.username, 'shared');
  await lockLearners(tx, [{ ...learner, studentKey: link.sent }]);
  const userId = await accountIdOfUsername(tx, link.username);
  const [enrollment] = await programEnrollmentsOfKeys(tx, program.programUuid, [link.lower]);
  const [held] = userId === null ? [] : await programEnrollmentsOfAccounts(tx, [userId], program.programUuid);
  const error = checkLink(program.programUuid, link.sent, link.username, {
    userId,
    enrollment: enrollment ?? null,
    accountEnrollmentId: held?.id ?? null,
  });
  if (error !== null) return error;
  if (enrollment!.userId !== null) await unlinkProgramEnrollment(tx, enrollment!.id, enrollment!.userId, stamp, log);
  await realizeProgramEnrollments(tx, [{ peId: enrollment!.id, userId: userId! }], stamp, log);
  await attachLearners(tx, [{ ...learner, userId: userId! }]);
  return null;
}
