import { createHash } from 'node:crypto';
import type { RetireLearnerPayload } from '../contract/payloads.js';
import type { RetireResult } from '../contract/results.js';
import type { Tx } from '../db/client.js';
import { insertHistory, type JobStamp, retireKeysInHistory } from '../db/history.js';
import { deleteLearners, deleteLearnersOfAccount, lockLearners } from '../db/learners.js';
import { setPceKeysOfEnrollments } from '../db/program-course-enrollments.js';
import { setProgramEnrollmentKeys, unretiredEnrollmentsOfAccount } from '../db/program-enrollments.js';
import type { Logger } from '../log.js';

/**
 * The retired form of a PE's key: `retired_` and 64 hex digits of a one-way hash of the learner
 * (organization and key, case-folded) and the PE. The PE is in it because a key may be uploaded
 * again after retirement, get another account and be retired again in the same program: the two
 * retired PEs must not collide.
 */
export function retiredKey(organizationKey: string, studentKeyLower: string, peId: number, salt: string): string {
  return `retired_${createHash('sha256').update(`${salt}\u001f${organizationKey}\u001f${studentKeyLower}\u001f${peId}`).digest('hex')}`;
}

/**
 * `retire-learner` (GDPR, docs/rules.md rule 12): replaces the account's key on every PE, in the
 * PCEs' copies and in the history (the `changes` of earlier rows included), and forgets the
 * account's identities, so a later upload of the old key creates a new waiting PE. Running it
 * again changes nothing.
 */
export async function retireLearner(
  tx: Tx,
  payload: RetireLearnerPayload,
  salt: string,
  stamp: JobStamp,
  log: Logger,
): Promise<RetireResult> {
  const enrollments = await unretiredEnrollmentsOfAccount(tx, payload.user_id);
  await lockLearners(
    tx,
    enrollments.map((e) => ({ ...e, studentKey: e.studentKeyLower })),
  );
  const retired = enrollments.map((e) => ({
    id: e.id,
    key: retiredKey(e.organizationKey, e.studentKeyLower, e.id, salt),
  }));
  if (retired.length) {
    await setProgramEnrollmentKeys(tx, retired);
    await setPceKeysOfEnrollments(tx, retired);
    await retireKeysInHistory(tx, retired);
    await insertHistory(
      tx,
      retired.map((r) => ({
        entity: 'program_enrollment',
        entityId: r.id,
        programEnrollmentId: r.id,
        action: 'changed',
        changes: { student_key: [null, r.key] },
      })),
      stamp,
    );
  }
  // The learners of the old keys go too: nothing may keep a retired key.
  await deleteLearners(tx, enrollments);
  await deleteLearnersOfAccount(tx, payload.user_id);
  log.info({ user: payload.user_id, retired: retired.length }, 'learner retired');
  return { retired: retired.length };
}
