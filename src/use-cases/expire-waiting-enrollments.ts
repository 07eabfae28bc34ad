import type { ExpireWaitingEnrollmentsPayload } from '../contract/payloads.js';
import type { ExpiryResult } from '../contract/results.js';
import type { Tx } from '../db/client.js';
import { deleteHistoryOfEnrollments } from '../db/history.js';
import { forgetFinished, holdCommitOrder } from '../db/job-ledger.js';
import { deleteUnusedLearners, lockLearners } from '../db/learners.js';
import { deletePublishedEvents } from '../db/outbox.js';
import { pcesOfEnrollments } from '../db/program-course-enrollments.js';
import {
  deleteProgramEnrollments,
  learnersOfWaitingEnrollmentsOlderThan,
  lockWaitingEnrollmentsOlderThan,
} from '../db/program-enrollments.js';
import type { Logger } from '../log.js';

/** How long finished jobs are remembered for re-submission under the same jobId (docs/contract.md: 7 days). */
const JOB_RESULT_RETENTION_DAYS = 7;
/** Account and course events are remembered longer: the LMS may replay old events. */
const EVENT_RESULT_RETENTION_DAYS = 90;

/**
 * `expire-waiting-enrollments` (docs/rules.md rule 11): deletes waiting PEs whose own modification
 * time is `expiration_days` old or older, with their PCEs, pending roles (by cascade) and history.
 * Realized PEs never expire. A write that refreshes a PE at the same moment wins: the row lock
 * makes the delete re-check the PE's age after the write commits. It also forgets job results and
 * the published outbound events (after `eventRetentionDays`) past their retention, as part of the
 * same daily run.
 */
export async function expireWaitingEnrollments(
  tx: Tx,
  payload: ExpireWaitingEnrollmentsPayload,
  eventRetentionDays: number,
  log: Logger,
): Promise<ExpiryResult> {
  // Beyond a few thousand years every timestamp is younger; past that Postgres's range ends.
  const seconds = Math.min(payload.expiration_days * 86_400, 1e11);
  // The learners' locks first, as every write takes them: a write that got there before commits
  // (and refreshes its PE, which then no longer qualifies); one that comes after waits.
  await lockLearners(tx, await learnersOfWaitingEnrollmentsOlderThan(tx, seconds));
  // A PE created since, for a learner not locked above, is found by a predicate, not a lock: the
  // commit order's gate makes what the expiry sees exactly what committed before it (job-ledger.ts).
  await holdCommitOrder(tx);
  const expired = await lockWaitingEnrollmentsOlderThan(tx, seconds);
  const ids = expired.map((e) => e.id);
  let pces = 0;
  if (ids.length) {
    const courses = await pcesOfEnrollments(tx, ids);
    pces = courses.length;
    const programOf = new Map(expired.map((e) => [e.id, e.programUuid]));
    for (const e of expired) log.info({ pe: e.id, program: e.programUuid }, 'found expired program_enrollment');
    for (const c of courses)
      log.info(
        { pce: c.id, program: programOf.get(c.peId), course: c.courseKey },
        'found expired program_course_enrollment',
      );
    // Their history goes with them (Open edX does the same), so nothing about them remains.
    await deleteHistoryOfEnrollments(tx, ids);
    await deleteProgramEnrollments(tx, ids);
  }
  await deleteUnusedLearners(tx);
  await forgetFinished(tx, EVENT_RESULT_RETENTION_DAYS, JOB_RESULT_RETENTION_DAYS);
  await deletePublishedEvents(tx, eventRetentionDays);
  const result = { removed: { program_enrollments: ids.length, program_course_enrollments: pces } };
  log.info({ expirationDays: payload.expiration_days, ...result.removed }, 'expired waiting enrollments removed');
  return result;
}
