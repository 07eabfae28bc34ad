import type { Tx } from '../db/client.js';
import { insertHistory, type JobStamp, type Stamps, stampOfAccount } from '../db/history.js';
import { learnerId } from '../db/learners.js';
import { pcesOfEnrollments } from '../db/program-course-enrollments.js';
import {
  linkWaitingEnrollments,
  programEnrollmentsOfAccounts,
  unlinkEnrollment,
  waitingEnrollmentsOfLearners,
} from '../db/program-enrollments.js';
import { courseEffectsOf } from '../domain/course-effects.js';
import { chooseLinks, type LinkCandidate } from '../domain/one-enrollment-per-program.js';
import { compareCodePoints } from '../domain/order.js';
import type { Logger } from '../log.js';
import { applyCourseEffects, grantPendingRoles, takePendingRoles } from './course-access.js';

/**
 * Links waiting PEs to accounts, oldest first: the PE gets its user, every PCE is realized
 * (docs/rules.md rule 6) and pending staff roles become real ones (rule 8). The caller holds the
 * learners' locks and has chosen the links (`chooseLinks`). Returns each linked PE's course keys.
 * Each change is stamped as its account's (`Stamps`: one job, or a batch of account events).
 */
export async function realizeProgramEnrollments(
  tx: Tx,
  links: ReadonlyArray<{ peId: number; userId: number }>,
  stamps: Stamps,
  log: Logger,
): Promise<Map<number, string[]>> {
  const courseKeys = new Map<number, string[]>();
  if (links.length === 0) return courseKeys;
  const linked = await linkWaitingEnrollments(
    tx,
    [...links].sort((a, b) => a.peId - b.peId),
  );
  if (linked.length === 0) return courseKeys;
  const userOf = new Map(linked.map((l) => [l.id, l.userId]));
  const ids = [...userOf.keys()].sort((a, b) => a - b);
  // Sent together: one round trip. The pending roles are taken before the course effects are
  // applied, which neither read nor write them.
  const [, pces, pendingRoles] = await Promise.all([
    insertHistory(
      tx,
      ids.map((id) => ({
        entity: 'program_enrollment',
        entityId: id,
        programEnrollmentId: id,
        action: 'changed',
        changes: { user_id: [null, userOf.get(id)] },
      })),
      ids.map((id) => stampOfAccount(stamps, userOf.get(id)!)),
    ),
    pcesOfEnrollments(tx, ids),
    takePendingRoles(tx, ids),
  ]);
  for (const id of ids) courseKeys.set(id, []);
  for (const p of pces) courseKeys.get(p.peId)!.push(p.courseKey);
  const effects = courseEffectsOf(
    pces.map((p) => ({
      on: 'linked',
      pceId: p.id,
      userId: userOf.get(p.peId)!,
      courseKey: p.courseKey,
      status: p.status,
    })),
  );
  await applyCourseEffects(tx, effects, stamps, log);
  await grantPendingRoles(tx, pendingRoles, stamps);
  for (const keys of courseKeys.values()) keys.sort(compareCodePoints);
  return courseKeys;
}

/** Logs the PEs that stay waiting because their account already has a PE in the program. */
export function logKeptWaiting(log: Logger, kept: readonly LinkCandidate[]): void {
  for (const pe of kept)
    log.warn(
      { program: pe.programUuid, pe: pe.peId },
      'account already has a PE in the program: this PE stays waiting',
    );
}

/**
 * Links this program's waiting PEs of learners whose account is known (`known`, from
 * `lockLearners`), unless the account already has a PE in the program (that PE stays waiting).
 * Returns whether it linked any.
 */
export async function linkWaitingOfKnownLearners(
  tx: Tx,
  programUuid: string,
  organizationKey: string,
  lowers: readonly string[],
  known: ReadonlyMap<string, number | null>,
  stamp: JobStamp,
  log: Logger,
): Promise<boolean> {
  const userOf = (lower: string) => known.get(learnerId({ organizationKey, studentKeyLower: lower })) ?? null;
  const withAccount = lowers.filter((l) => userOf(l) !== null);
  if (withAccount.length === 0) return false;
  const waiting = await waitingEnrollmentsOfLearners(
    tx,
    withAccount.map((studentKeyLower) => ({ organizationKey, studentKeyLower })),
    programUuid,
  );
  if (waiting.length === 0) return false;
  const candidates = waiting.map((pe) => ({ peId: pe.id, programUuid, userId: userOf(pe.lower)! }));
  const held = await programEnrollmentsOfAccounts(tx, [...new Set(candidates.map((c) => c.userId))], programUuid);
  const { links, keptWaiting } = chooseLinks(candidates, held);
  logKeptWaiting(log, keptWaiting);
  return (await realizeProgramEnrollments(tx, links, stamp, log)).size > 0;
}

/**
 * Detaches a realized PE from its account: its PCEs let go of their CEs (each CE no other active
 * PCE holds is deactivated and moved to audit where the course offers it), then the PE waits
 * (docs/rules.md rule 10). A PCE without a CE is simply left as it is (Open edX crashed on it).
 */
export async function unlinkProgramEnrollment(
  tx: Tx,
  peId: number,
  userId: number,
  stamp: JobStamp,
  log: Logger,
): Promise<void> {
  const pces = await pcesOfEnrollments(tx, [peId]);
  const effects = courseEffectsOf(
    pces.map((p) => ({ on: 'unlinked', pceId: p.id, userId, ceId: p.ceId, courseKey: p.courseKey })),
  );
  await applyCourseEffects(tx, effects, stamp, log);
  await unlinkEnrollment(tx, peId);
  await insertHistory(
    tx,
    [
      {
        entity: 'program_enrollment',
        entityId: peId,
        programEnrollmentId: peId,
        action: 'changed',
        changes: { user_id: [userId, null] },
      },
    ],
    stamp,
  );
}
