import type { WriteAction } from './program-enrollment-writes.js';
import { type CourseStatus, isCourseStatus } from './statuses.js';
import type { SentRecord } from './write-results.js';

export interface CourseRecord extends SentRecord {
  status: string;
  /** true grants the staff role, false revokes it, null leaves it alone. */
  courseStaff: boolean | null;
}

export interface CourseWriteState {
  /** This program's PEs of the chunk's learners, by lower-cased key. */
  enrollments: Map<string, { peId: number; userId: number | null }>;
  /** Their PCEs in this course, by lower-cased key. */
  pces: Map<string, { id: number; status: CourseStatus; ceId: number | null }>;
  /** Learners holding an active PCE for this course in another program. */
  activeElsewhere: Set<string>;
}

export interface CourseWritePlan {
  results: Record<string, string>;
  creates: Array<{ record: CourseRecord; peId: number; userId: number | null; status: CourseStatus }>;
  /** Existing PCEs whose status changes (an update to the same status writes nothing). */
  updates: Array<{
    id: number;
    peId: number;
    userId: number | null;
    ceId: number | null;
    from: CourseStatus;
    to: CourseStatus;
  }>;
  /** Staff role changes, for records that were created or updated. */
  staff: Array<{ lower: string; grant: boolean }>;
}

/**
 * Course writes, per record, in the order of docs/rules.md rule 4: cross-program `conflict` (an `active`
 * request while another program holds an active PCE), `invalid-status`, `not-in-program`, then
 * `conflict` for a create of an existing PCE or `not-found` for an update of a missing one.
 * Duplicates are settled before this.
 */
export function planCourseWrites(
  records: readonly CourseRecord[],
  action: WriteAction,
  state: CourseWriteState,
): CourseWritePlan {
  // Null prototype: a student key may be any string, `__proto__` included.
  const plan: CourseWritePlan = { results: Object.create(null), creates: [], updates: [], staff: [] };
  for (const record of records) {
    const fail = (result: string) => (plan.results[record.sent] = result);
    if (record.status === 'active' && state.activeElsewhere.has(record.lower)) {
      fail('conflict');
      continue;
    }
    if (!isCourseStatus(record.status)) {
      fail('invalid-status');
      continue;
    }
    const enrollment = state.enrollments.get(record.lower);
    if (!enrollment) {
      fail('not-in-program');
      continue;
    }
    const pce = state.pces.get(record.lower);
    if (pce) {
      if (action === 'create') {
        fail('conflict');
        continue;
      }
      if (pce.status !== record.status) {
        plan.updates.push({
          id: pce.id,
          peId: enrollment.peId,
          userId: enrollment.userId,
          ceId: pce.ceId,
          from: pce.status,
          to: record.status,
        });
      }
    } else {
      if (action === 'update') {
        fail('not-found');
        continue;
      }
      plan.creates.push({ record, peId: enrollment.peId, userId: enrollment.userId, status: record.status });
    }
    plan.results[record.sent] = record.status;
    if (record.courseStaff !== null) plan.staff.push({ lower: record.lower, grant: record.courseStaff });
  }
  return plan;
}
