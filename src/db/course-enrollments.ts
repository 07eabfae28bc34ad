import type { Tx } from './client.js';

/** An account's enrollment in a course run (a CE). */
export interface CourseEnrollmentRow {
  id: number;
  userId: number;
  courseKey: string;
  mode: string;
  isActive: boolean;
}

// postgres.js sends a JS boolean array with the wrong type; booleans travel as text ('true'/'false').

/**
 * Locks the CEs of these (account, course) pairs that exist, in `id` order (the order every
 * statement that locks CEs takes them in). Each pair is one probe of the unique index
 * (`lateral … offset 0`), and the CEs found are locked through the primary key: as a join, the
 * planner hashed every CE for each chunk (`auto_explain`: a sequential scan of the whole table),
 * a cost that grew with the table.
 */
export async function lockCourseEnrollments(
  tx: Tx,
  pairs: ReadonlyArray<{ userId: number; courseKey: string }>,
): Promise<CourseEnrollmentRow[]> {
  return tx<CourseEnrollmentRow[]>`
    select ce.id, ce.user_id as "userId", ce.course_key as "courseKey", ce.mode, ce.is_active as "isActive"
    from course_enrollments ce
    where ce.id = any(array(
      select found.id
      from unnest(${pairs.map((p) => p.userId)}::bigint[], ${pairs.map((p) => p.courseKey)}::text[]) as p(user_id, course_key)
      join lateral (
        select id from course_enrollments where user_id = p.user_id and course_key = p.course_key offset 0
      ) found on true
    ))
    order by ce.id
    for update of ce`;
}

/** Inserts CEs; a pair that exists already is skipped (and missing from what is returned). */
export async function insertCourseEnrollments(
  tx: Tx,
  rows: ReadonlyArray<Omit<CourseEnrollmentRow, 'id'>>,
): Promise<Array<{ id: number; userId: number; courseKey: string }>> {
  return tx<{ id: number; userId: number; courseKey: string }[]>`
    insert into course_enrollments (user_id, course_key, mode, is_active)
    select * from unnest(
      ${rows.map((s) => s.userId)}::bigint[], ${rows.map((s) => s.courseKey)}::text[],
      ${rows.map((s) => s.mode)}::text[], ${rows.map((s) => String(s.isActive))}::text[]::boolean[])
    on conflict (user_id, course_key) do nothing
    returning id, user_id as "userId", course_key as "courseKey"`;
}

export async function updateCourseEnrollments(
  tx: Tx,
  rows: ReadonlyArray<{ id: number; mode: string; isActive: boolean }>,
): Promise<void> {
  await tx`
    update course_enrollments ce set mode = v.mode, is_active = v.is_active, modified_at = now()
    from unnest(${rows.map((s) => s.id)}::bigint[], ${rows.map((s) => s.mode)}::text[], ${rows.map((s) => String(s.isActive))}::text[]::boolean[])
      as v(id, mode, is_active)
    where ce.id = v.id`;
}
