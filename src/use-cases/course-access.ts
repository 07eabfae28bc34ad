import type { Tx } from '../db/client.js';
import {
  type CourseEnrollmentRow,
  insertCourseEnrollments,
  lockCourseEnrollments,
  updateCourseEnrollments,
} from '../db/course-enrollments.js';
import { insertHistory, type JobStamp, type Stamps, stampOfAccount } from '../db/history.js';
import { insertOutboxEvents } from '../db/outbox.js';
import { holdersOfCourseEnrollments, setPceCourseEnrollments } from '../db/program-course-enrollments.js';
import { courseModes } from '../db/programs.js';
import {
  deletePendingRoles,
  deleteStaffRoles,
  insertPendingRoles,
  insertStaffRoles,
  takePendingRolesOfEnrollments,
} from '../db/staff-roles.js';
import { courseEnrollmentEvents, staffRoleEvents } from '../domain/course-access-events.js';
import { type CourseEnrollmentFields, courseEnrollmentChanges } from '../domain/course-effects.js';
import {
  applyCourseEffects as applyCourseEffectRules,
  type CourseEffect,
  type CourseEnrollmentState,
  pairKey,
} from '../domain/course-enrollment.js';
import { RetryableError } from '../domain/errors.js';
import type { HistoryRow } from '../domain/history.js';
import type { StaffRoleChanges } from '../domain/staff-roles.js';
import type { Logger } from '../log.js';

/**
 * The one way course access changes: every write of a course enrollment (CE: created, mode or
 * is_active changed) and every grant, revoke or pending staff role passes through here, and each
 * entry point reports what actually changed, so that whatever must follow a change (history, and
 * the outbound events of docs/contract.md "Outbound events", in the same transaction) is derived
 * from the report without reading the rows again.
 */

/** What happened to one CE. */
export type CourseEnrollmentChange =
  | { kind: 'created'; ceId: number; userId: number; courseKey: string; to: CourseEnrollmentFields }
  | {
      kind: 'changed';
      ceId: number;
      userId: number;
      courseKey: string;
      from: CourseEnrollmentFields;
      to: CourseEnrollmentFields;
    }
  | { kind: 'unchanged'; ceId: number; userId: number; courseKey: string; to: CourseEnrollmentFields };

/** What happened to one staff role. */
export type StaffRoleChange =
  | { kind: 'granted' | 'revoked'; userId: number; courseKey: string }
  | { kind: 'pending-added' | 'pending-dropped'; pceId: number; courseKey: string };

export interface CourseEffectsOutcome {
  /** Each (account, course) pair's CE id, by `pairKey`. */
  ceIds: Map<string, number>;
  changes: CourseEnrollmentChange[];
}

/** A history row and the account it concerns, whose stamp it takes (`Stamps`). */
type AccountHistoryRow = HistoryRow & { userId: number };

/** Inserts history rows, each stamped as the changes of its account. */
function insertAccountHistory(tx: Tx, rows: readonly AccountHistoryRow[], stamps: Stamps): Promise<void> {
  return insertHistory(
    tx,
    rows.map(({ userId: _, ...row }) => row),
    rows.map((r) => stampOfAccount(stamps, r.userId)),
  );
}

/**
 * Writes created and changed CEs; the CE ids of created ones are filled in. Returns what changed
 * and the history rows to insert, which the caller sends with its next statements (one round trip).
 */
async function writeCourseEnrollments(
  tx: Tx,
  created: Array<Omit<CourseEnrollmentRow, 'id'> & { id: number | null }>,
  changed: Array<{ before: CourseEnrollmentRow; after: CourseEnrollmentFields }>,
): Promise<{ changes: CourseEnrollmentChange[]; history: AccountHistoryRow[] }> {
  const changes: CourseEnrollmentChange[] = [];
  const history: AccountHistoryRow[] = [];
  if (created.length) {
    const rows = await insertCourseEnrollments(tx, created);
    // Another writer created one of these CEs since they were looked up: run again and see it.
    if (rows.length !== created.length) throw new RetryableError('a course enrollment was created concurrently');
    const idOf = new Map(rows.map((r) => [pairKey(r.userId, r.courseKey), r.id]));
    for (const ce of created) {
      ce.id = idOf.get(pairKey(ce.userId, ce.courseKey))!;
      const to = { mode: ce.mode, isActive: ce.isActive };
      changes.push({ kind: 'created', ceId: ce.id, userId: ce.userId, courseKey: ce.courseKey, to });
      history.push({
        userId: ce.userId,
        entity: 'course_enrollment',
        entityId: ce.id,
        programEnrollmentId: null,
        action: 'created',
        changes: {
          user_id: [null, ce.userId],
          course_key: [null, ce.courseKey],
          mode: [null, ce.mode],
          is_active: [null, ce.isActive],
        },
        courseKey: ce.courseKey,
      });
    }
  }
  const updated = changed.filter((c) => courseEnrollmentChanges(c.before, c.after) !== null);
  if (updated.length) {
    await updateCourseEnrollments(
      tx,
      updated.map((c) => ({ id: c.before.id, mode: c.after.mode, isActive: c.after.isActive })),
    );
  }
  for (const { before, after } of changed) {
    const diff = courseEnrollmentChanges(before, after);
    const from = { mode: before.mode, isActive: before.isActive };
    const base = { ceId: before.id, userId: before.userId, courseKey: before.courseKey };
    if (diff === null) {
      changes.push({ kind: 'unchanged', ...base, to: from });
      continue;
    }
    changes.push({ kind: 'changed', ...base, from, to: { mode: after.mode, isActive: after.isActive } });
    history.push({
      userId: before.userId,
      entity: 'course_enrollment',
      entityId: before.id,
      programEnrollmentId: null,
      action: 'changed',
      changes: diff,
      courseKey: before.courseKey,
    });
  }
  return { changes, history };
}

/**
 * Bulk: loads the CEs the effects touch (locking them), runs the pure rules of
 * domain/course-enrollment.ts, and writes the CEs that changed, the PCEs' links to them and the
 * history, in a handful of statements whatever the number of effects.
 *
 * Effects may name PCEs that are not inserted yet by a negative placeholder id; the caller inserts
 * those with the CE id returned for their (user, course).
 */
export async function applyCourseEffects(
  tx: Tx,
  effects: readonly CourseEffect[],
  stamps: Stamps,
  log: Logger,
): Promise<CourseEffectsOutcome> {
  const ceIds = new Map<string, number>();
  if (effects.length === 0) return { ceIds, changes: [] };
  const pairs = new Map<string, { userId: number; courseKey: string }>();
  for (const e of effects) pairs.set(pairKey(e.userId, e.courseKey), { userId: e.userId, courseKey: e.courseKey });

  const loaded = await lockCourseEnrollments(tx, [...pairs.values()]);
  const holders = await holdersOfCourseEnrollments(
    tx,
    loaded.map((c) => c.id),
  );
  const states = new Map<string, CourseEnrollmentState>();
  for (const c of loaded) states.set(pairKey(c.userId, c.courseKey), { ...c, holders: new Map() });
  const byId = new Map(loaded.map((c) => [c.id, states.get(pairKey(c.userId, c.courseKey))!]));
  for (const h of holders) byId.get(h.ceId)?.holders.set(h.id, h.status);

  const modes = effects.some((e) => e.kind === 'detach')
    ? await courseModes(tx, [...new Set(effects.map((e) => e.courseKey))])
    : new Map<string, string[]>();
  const { notes } = applyCourseEffectRules(states, effects, modes);
  for (const note of notes) log.warn(note);

  const created = [...states.values()].filter((s) => s.id === null);
  const changed = loaded.map((before) => ({ before, after: byId.get(before.id)! }));
  const { changes, history } = await writeCourseEnrollments(tx, created, changed);
  for (const [key, s] of states) ceIds.set(key, s.id!);

  // Existing PCEs that got or lost their CE.
  const relinks = effects
    .filter((e) => e.pceId > 0 && (e.kind === 'realize' || e.kind === 'detach'))
    .map((e) => ({ pceId: e.pceId, ceId: e.kind === 'realize' ? ceIds.get(pairKey(e.userId, e.courseKey))! : null }));
  // The CEs' history, their outbound events and the PCEs' new links depend only on the CE rows
  // written above: sent together, one round trip (postgres.js pipelines a transaction's queries
  // and Postgres runs them in the order sent).
  const [, , rows] = await Promise.all([
    insertAccountHistory(tx, history, stamps),
    stamps.recordEvents ? insertOutboxEvents(tx, courseEnrollmentEvents(changes)) : undefined,
    relinks.length ? setPceCourseEnrollments(tx, relinks) : [],
  ]);
  if (rows.length) {
    const effectOfPce = new Map(effects.map((e) => [e.pceId, e]));
    await insertAccountHistory(
      tx,
      rows.map((r) => ({
        userId: effectOfPce.get(r.id)!.userId,
        entity: 'program_course_enrollment',
        entityId: r.id,
        programEnrollmentId: r.peId,
        action: 'changed',
        changes: { course_enrollment_id: [r.old, r.ceId] },
        courseKey: effectOfPce.get(r.id)!.courseKey,
      })),
      stamps,
    );
  }
  return { ceIds, changes };
}

/**
 * Single row: the LMS's word on one CE (docs/contract.md "Account events",
 * `course-enrollment-changed`) overwrites its mode and is_active, creating it when it is new. It
 * writes no outbound event: the LMS is not told what it reported itself.
 */
export async function setCourseEnrollment(
  tx: Tx,
  ce: Omit<CourseEnrollmentRow, 'id'>,
  stamp: JobStamp,
): Promise<CourseEnrollmentChange> {
  const [before] = await lockCourseEnrollments(tx, [ce]);
  const after = { mode: ce.mode, isActive: ce.isActive };
  const { changes, history } = before
    ? await writeCourseEnrollments(tx, [], [{ before, after }])
    : await writeCourseEnrollments(tx, [{ ...ce, id: null }], []);
  await insertAccountHistory(tx, history, stamp);
  return changes[0]!;
}

/**
 * Grants and revokes staff roles on a course, real or pending (docs/rules.md rule 8), through a
 * program of organization `orgKey` (named by the outbound events of the real ones).
 */
export async function changeStaffRoles(
  tx: Tx,
  courseKey: string,
  orgKey: string,
  roles: StaffRoleChanges,
  stamp: JobStamp,
): Promise<StaffRoleChange[]> {
  const changes: StaffRoleChange[] = [];
  // A staff role is the account's, and two learners linked to one account may change it at once:
  // the account's CE for the course (every realized PCE has one) orders them, as it orders their
  // course effects; a delete would not wait for a grant it cannot see yet.
  const accounts = [...roles.grant, ...roles.revoke];
  if (accounts.length)
    await lockCourseEnrollments(
      tx,
      accounts.map((userId) => ({ userId, courseKey })),
    );
  if (roles.grant.length) {
    const granted = await insertStaffRoles(
      tx,
      roles.grant.map((userId) => ({ userId, courseKey })),
    );
    for (const g of granted) changes.push({ kind: 'granted', ...g });
  }
  if (roles.revoke.length) {
    for (const userId of await deleteStaffRoles(tx, courseKey, roles.revoke))
      changes.push({ kind: 'revoked', userId, courseKey });
  }
  if (stamp.recordEvents) {
    const real = (kind: 'granted' | 'revoked') =>
      changes.flatMap((c) => (c.kind === kind ? [{ userId: c.userId, courseKey, orgKey }] : []));
    await insertOutboxEvents(tx, [
      ...staffRoleEvents('added', real('granted')),
      ...staffRoleEvents('removed', real('revoked')),
    ]);
  }
  if (roles.grantPending.length) {
    for (const pceId of await insertPendingRoles(tx, roles.grantPending))
      changes.push({ kind: 'pending-added', pceId, courseKey });
  }
  if (roles.revokePending.length) {
    for (const pceId of await deletePendingRoles(tx, roles.revokePending))
      changes.push({ kind: 'pending-dropped', pceId, courseKey });
  }
  return changes;
}

/**
 * The staff roles pending on the PCEs of PEs just linked, taken away (the first half of rule 8):
 * a promise, so that the caller sends it with its other statements, in one round trip.
 */
export function takePendingRoles(
  tx: Tx,
  linkedPeIds: readonly number[],
): Promise<Array<{ userId: number; courseKey: string; orgKey: string }>> {
  return takePendingRolesOfEnrollments(tx, linkedPeIds);
}

/** The pending staff roles taken from the PCEs of PEs just linked become the account's (rule 8). */
export async function grantPendingRoles(
  tx: Tx,
  taken: ReadonlyArray<{ userId: number; courseKey: string; orgKey: string }>,
  stamps: Stamps,
): Promise<StaffRoleChange[]> {
  if (taken.length === 0) return [];
  const granted = await insertStaffRoles(tx, taken);
  if (stamps.recordEvents) {
    const orgOf = new Map(taken.map((r) => [pairKey(r.userId, r.courseKey), r.orgKey]));
    const roles = granted.map((g) => ({ ...g, orgKey: orgOf.get(pairKey(g.userId, g.courseKey))! }));
    await insertOutboxEvents(tx, staffRoleEvents('added', roles));
  }
  return granted.map((g) => ({ kind: 'granted', ...g }));
}
