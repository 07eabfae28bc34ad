import type { CourseEffect } from '../domain/course-enrollment.js';
import type { HistoryRow } from '../domain/history.js';
import type { CourseStatus } from '../domain/statuses.js';
import type { Logger } from '../log.js';
import type { Queryable, Tx } from './client.js';
import { applyCourseEnrollmentEffects } from './course-enrollments.js';
import { insertHistory, type JobStamp } from './history.js';

/** A learner: the partner organization's person, keyed case-insensitively. */
export interface Learner {
  organizationKey: string;
  studentKeyLower: string;
}

/**
 * Serializes every transaction that touches these learners (write jobs, account events, links),
 * so that an account event and a write creating the same learner's PE cannot miss each other.
 * Transaction-scoped advisory locks, taken in one sorted order so that two jobs never deadlock.
 */
export async function lockLearners(tx: Tx, learners: readonly Learner[]): Promise<void> {
  if (learners.length === 0) return;
  const keys = [...new Set(learners.map((l) => `${l.organizationKey}\u001f${l.studentKeyLower}`))].sort();
  await tx`select pg_advisory_xact_lock(hashtextextended(k, 0)) from unnest(${keys}::text[]) as k`;
}

/** The accounts known for these learners of one organization (from account events and links). */
export async function knownAccounts(sql: Queryable, organizationKey: string, lowers: readonly string[]): Promise<Map<string, number>> {
  if (lowers.length === 0) return new Map();
  const rows = await sql<{ lower: string; userId: number }[]>`
    select student_key_lower as lower, user_id as "userId" from learner_identities
    where organization_key = ${organizationKey} and student_key_lower = any(${lowers as string[]}::text[])`;
  return new Map(rows.map((r) => [r.lower, r.userId]));
}

/**
 * Links waiting PEs to accounts, oldest first: the PE gets its user, every PCE is realized
 * (SPEC rule 6) and pending staff roles become real ones. The caller holds the learners' locks
 * and has checked that no account gets a second PE in a program. Returns each linked PE's
 * course keys.
 */
export async function linkProgramEnrollments(
  tx: Tx,
  links: ReadonlyArray<{ peId: number; userId: number }>,
  stamp: JobStamp,
  log: Logger,
): Promise<Map<number, string[]>> {
  const courseKeys = new Map<number, string[]>();
  if (links.length === 0) return courseKeys;
  const ordered = [...links].sort((a, b) => a.peId - b.peId);
  const linked = await tx<{ id: number; userId: number }[]>`
    update program_enrollments pe set user_id = v.user_id, modified_at = now()
    from unnest(${ordered.map((l) => l.peId)}::bigint[], ${ordered.map((l) => l.userId)}::bigint[]) as v(id, user_id)
    where pe.id = v.id and pe.user_id is null
    returning pe.id, pe.user_id as "userId"`;
  if (linked.length === 0) return courseKeys;
  const userOf = new Map(linked.map((l) => [l.id, l.userId]));
  const ids = [...userOf.keys()].sort((a, b) => a - b);
  const history: HistoryRow[] = ids.map((id) => ({
    entity: 'program_enrollment', entityId: id, programEnrollmentId: id, action: 'changed', changes: { user_id: [null, userOf.get(id)] },
  }));
  await insertHistory(tx, history, stamp);

  const pces = await tx<{ id: number; peId: number; courseKey: string; status: CourseStatus }[]>`
    select id, program_enrollment_id as "peId", course_key as "courseKey", status from program_course_enrollments
    where program_enrollment_id = any(${ids}::bigint[])
    order by program_enrollment_id, id`;
  for (const id of ids) courseKeys.set(id, []);
  const effects: CourseEffect[] = pces.map((p) => {
    courseKeys.get(p.peId)!.push(p.courseKey);
    return { kind: 'realize', pceId: p.id, userId: userOf.get(p.peId)!, courseKey: p.courseKey, status: p.status };
  });
  await applyCourseEnrollmentEffects(tx, effects, stamp, log);

  if (pces.length) {
    const pceIds = pces.map((p) => p.id);
    await tx`
      insert into course_staff_roles (user_id, course_key)
      select pe.user_id, pce.course_key
      from pending_role_assignments pra
      join program_course_enrollments pce on pce.id = pra.program_course_enrollment_id
      join program_enrollments pe on pe.id = pce.program_enrollment_id
      where pra.program_course_enrollment_id = any(${pceIds}::bigint[])
      on conflict do nothing`;
    await tx`delete from pending_role_assignments where program_course_enrollment_id = any(${pceIds}::bigint[])`;
  }
  for (const keys of courseKeys.values()) keys.sort();
  return courseKeys;
}
