import type { Fragment, Sql } from 'postgres';

/**
 * The queries behind the read API (docs/contract.md "HTTP"). Each list query takes a keyset window on its
 * row id, so that one pagination helper serves every list and no page is read with OFFSET.
 */

/** Rows whose id is above `afterId` and/or below `beforeId`, the first `limit` in that order. */
export interface KeysetWindow {
  afterId: number | null;
  beforeId: number | null;
  /** Descending takes the rows nearest to `beforeId`: a previous page read backwards. */
  descending: boolean;
  limit: number;
}

/** The `and … order by … limit …` tail of a list query, on the row id `column`. */
function keyset(sql: Sql, column: Fragment, window: KeysetWindow): Fragment {
  return sql`
    ${window.afterId !== null ? sql`and ${column} > ${window.afterId}` : sql``}
    ${window.beforeId !== null ? sql`and ${column} < ${window.beforeId}` : sql``}
    order by ${column} ${window.descending ? sql`desc` : sql`asc`}
    limit ${window.limit}`;
}

export async function programExists(sql: Sql, programUuid: string): Promise<boolean> {
  const [row] = await sql`select 1 from programs where program_uuid = ${programUuid}`;
  return row !== undefined;
}

export interface ProgramEnrollmentRow {
  id: number;
  studentKey: string;
  status: string;
  accountExists: boolean;
  curriculumUuid: string;
  /** '' while the PE waits for its account. */
  username: string;
  /** '' while waiting, and for an account without an email. */
  email: string;
}

export async function listProgramEnrollments(
  sql: Sql,
  programUuid: string,
  window: KeysetWindow,
): Promise<ProgramEnrollmentRow[]> {
  return sql<ProgramEnrollmentRow[]>`
    select pe.id, pe.student_key as "studentKey", pe.status,
           pe.user_id is not null as "accountExists", pe.curriculum_uuid as "curriculumUuid",
           coalesce(a.username, '') as username, coalesce(a.email, '') as email
    from program_enrollments pe
    left join accounts a on a.user_id = pe.user_id
    where pe.program_uuid = ${programUuid}
    ${keyset(sql, sql`pe.id`, window)}`;
}

export interface ProgramCourseEnrollmentRow {
  id: number;
  studentKey: string;
  status: string;
  accountExists: boolean;
  curriculumUuid: string;
  courseStaff: boolean;
}

/**
 * The PCEs of one program and course (`courseKey` is the course's own key). A realized learner is
 * staff when the account holds the course's staff role; a waiting one when a staff role waits for
 * the account on that PCE (Open edX `is_course_staff_enrollment`).
 */
export async function listProgramCourseEnrollments(
  sql: Sql,
  programUuid: string,
  courseKey: string,
  window: KeysetWindow,
): Promise<ProgramCourseEnrollmentRow[]> {
  return sql<ProgramCourseEnrollmentRow[]>`
    select pce.id, pe.student_key as "studentKey", pce.status,
           pe.user_id is not null as "accountExists", pe.curriculum_uuid as "curriculumUuid",
           case when pe.user_id is not null
             then exists (select 1 from course_staff_roles r
                          where r.user_id = pe.user_id and r.course_key = pce.course_key)
             else exists (select 1 from pending_role_assignments p
                          where p.program_course_enrollment_id = pce.id and p.role = 'staff')
           end as "courseStaff"
    from program_course_enrollments pce
    join program_enrollments pe on pe.id = pce.program_enrollment_id
    where pce.course_key = ${courseKey} and pe.program_uuid = ${programUuid}
    ${keyset(sql, sql`pce.id`, window)}`;
}

export interface HistoryEntry {
  at: Date;
  entity: string;
  action: string;
  changes: unknown;
  jobId: string | null;
  queue: string | null;
  requestedBy: string | null;
  courseKey: string | null;
}

/**
 * The history of one learner's PE and its PCEs, oldest first; empty when the program has no PE
 * for that key. The key matches case-insensitively, with Postgres's lower() as the stored
 * `student_key_lower` uses (JavaScript's toLowerCase differs on a few characters).
 */
export async function learnerHistory(sql: Sql, programUuid: string, studentKey: string): Promise<HistoryEntry[]> {
  return sql<HistoryEntry[]>`
    select h.at, h.entity, h.action, h.changes, h.job_id as "jobId", h.queue, h.requested_by as "requestedBy", h.course_key as "courseKey"
    from program_enrollments pe
    join history h on h.program_enrollment_id = pe.id
    where pe.program_uuid = ${programUuid} and pe.student_key_lower = lower(${studentKey})
      and h.entity in ('program_enrollment', 'program_course_enrollment')
    order by h.id`;
}

export async function accountExists(sql: Sql, userId: number): Promise<boolean> {
  const [row] = await sql`select 1 from accounts where user_id = ${userId}`;
  return row !== undefined;
}

export interface UserCourseEnrollmentRow {
  courseKey: string;
  mode: string;
  isActive: boolean;
  courseStaff: boolean;
}

/** An account's course enrollments, unordered (callers sort in code-point order). */
export async function userCourseEnrollments(sql: Sql, userId: number): Promise<UserCourseEnrollmentRow[]> {
  return sql<UserCourseEnrollmentRow[]>`
    select ce.course_key as "courseKey", ce.mode, ce.is_active as "isActive",
           r.user_id is not null as "courseStaff"
    from course_enrollments ce
    left join course_staff_roles r on r.user_id = ce.user_id and r.course_key = ce.course_key
    where ce.user_id = ${userId}`;
}
