import type { CourseStatus } from '../domain/statuses.js';
import { expectEveryRowUpdated, type Queryable, type Tx } from './client.js';
import type { Learner } from './learners.js';

/** A learner in a course: what the learner-course locks are taken on. */
export interface LearnerCoursePair extends Learner {
  courseKey: string;
}

/**
 * The courses the learners' PEs have PCEs in: of `programUuid` only or (null) of every program,
 * and of waiting PEs only when `waitingOnly`. The pairs a job locks before it links or writes.
 */
export async function coursePairsOfLearners(
  sql: Queryable,
  learners: readonly Learner[],
  filter: { programUuid: string | null; waitingOnly: boolean },
): Promise<LearnerCoursePair[]> {
  if (learners.length === 0) return [];
  return sql<LearnerCoursePair[]>`
    select pe.organization_key as "organizationKey", pe.student_key_lower as "studentKeyLower", pce.course_key as "courseKey"
    from unnest(${learners.map((l) => l.organizationKey)}::text[], ${learners.map((l) => l.studentKeyLower)}::text[]) as v(org, lower)
    join program_enrollments pe on pe.organization_key = v.org and pe.student_key_lower = v.lower
    join program_course_enrollments pce on pce.program_enrollment_id = pe.id
    where true
      ${filter.programUuid === null ? sql`` : sql`and pe.program_uuid = ${filter.programUuid}`}
      ${filter.waitingOnly ? sql`and pe.user_id is null` : sql``}`;
}

/**
 * For each identity as sent, in order: its key as Postgres lower-cases it, and the courses of its
 * waiting PEs (a row with `courseKey` null when it has none). One round trip for what an account
 * event reads before its transaction.
 */
export async function waitingCoursesOfIdentities(
  sql: Queryable,
  identities: ReadonlyArray<{ organizationKey: string; studentKey: string }>,
): Promise<Array<{ n: number; lower: string; courseKey: string | null }>> {
  if (identities.length === 0) return [];
  return sql<{ n: number; lower: string; courseKey: string | null }[]>`
    select v.n::int as n, lower(v.key) as lower, pce.course_key as "courseKey"
    from unnest(${identities.map((i) => i.organizationKey)}::text[], ${identities.map((i) => i.studentKey)}::text[])
      with ordinality as v(org, key, n)
    left join program_enrollments pe
      on pe.organization_key = v.org and pe.student_key_lower = lower(v.key) and pe.user_id is null
    left join program_course_enrollments pce on pce.program_enrollment_id = pe.id
    order by v.n`;
}

export interface PceOfEnrollment {
  id: number;
  peId: number;
  courseKey: string;
  status: CourseStatus;
  ceId: number | null;
}

/** The PCEs of these PEs, by PE then PCE id. */
export async function pcesOfEnrollments(tx: Tx, peIds: readonly number[]): Promise<PceOfEnrollment[]> {
  if (peIds.length === 0) return [];
  return tx<PceOfEnrollment[]>`
    select pce.id, pce.program_enrollment_id as "peId", pce.course_key as "courseKey", pce.status,
           pce.course_enrollment_id as "ceId"
    from unnest(${peIds as number[]}::bigint[]) as p(id)
    join program_course_enrollments pce on pce.program_enrollment_id = p.id
    order by pce.program_enrollment_id, pce.id`;
}

export interface CourseWriteRow {
  lower: string;
  peId: number;
  userId: number | null;
  pceId: number | null;
  status: CourseStatus | null;
  ceId: number | null;
}

/**
 * The program's PEs of these learners, each with its PCE in the course when it has one. Each key is
 * looked up through the unique indexes (`lateral … offset 0`, which the planner keeps a
 * parameterized index scan): as a join, once a program held 100,000 PEs the planner hashed all of
 * them for every 1,000-key chunk (auto_explain: a sequential scan, 150 ms a chunk).
 */
export async function enrollmentsInCourse(
  tx: Tx,
  programUuid: string,
  courseKey: string,
  lowers: readonly string[],
): Promise<CourseWriteRow[]> {
  return tx<CourseWriteRow[]>`
    select pe.student_key_lower as lower, pe.id as "peId", pe.user_id as "userId",
           pce.id as "pceId", pce.status, pce.course_enrollment_id as "ceId"
    from unnest(${lowers as string[]}::text[]) as k(lower)
    join lateral (
      select id, student_key_lower, user_id from program_enrollments
      where program_uuid = ${programUuid} and student_key_lower = k.lower offset 0
    ) pe on true
    left join lateral (
      select id, status, course_enrollment_id from program_course_enrollments
      where program_enrollment_id = pe.id and course_key = ${courseKey} offset 0
    ) pce on true`;
}

/** The learners (lower-cased keys) holding an active PCE in the course in another program than `programUuid`. */
export async function activeInCourseElsewhere(
  tx: Tx,
  programUuid: string,
  organizationKey: string,
  courseKey: string,
  lowers: readonly string[],
): Promise<string[]> {
  const rows = await tx<{ lower: string }[]>`
    select pce.student_key_lower as lower
    from unnest(${lowers as string[]}::text[]) as k(lower)
    join program_course_enrollments pce
      on pce.organization_key = ${organizationKey} and pce.student_key_lower = k.lower and pce.course_key = ${courseKey} and pce.status = 'active'
    join program_enrollments pe on pe.id = pce.program_enrollment_id
    where pe.program_uuid <> ${programUuid}`;
  return rows.map((r) => r.lower);
}

export async function updatePceStatuses(
  tx: Tx,
  rows: ReadonlyArray<{ id: number; status: CourseStatus }>,
): Promise<void> {
  const updated = await tx`
    update program_course_enrollments pce set status = v.status, modified_at = now()
    from unnest(${rows.map((x) => x.id)}::bigint[], ${rows.map((x) => x.status)}::text[]) as v(id, status)
    where pce.id = v.id`;
  expectEveryRowUpdated(updated.count, rows.length, 'program course enrollment');
}

export interface NewPce {
  peId: number;
  status: CourseStatus;
  ceId: number | null;
  lower: string;
}

/** Inserts PCEs of one course in the order given. */
export async function insertPces(
  tx: Tx,
  courseKey: string,
  organizationKey: string,
  rows: readonly NewPce[],
): Promise<Array<{ id: number; peId: number; ceId: number | null }>> {
  return tx<{ id: number; peId: number; ceId: number | null }[]>`
    insert into program_course_enrollments
      (program_enrollment_id, course_key, status, course_enrollment_id, organization_key, student_key_lower)
    select v.pe_id, ${courseKey}, v.status, v.ce_id, ${organizationKey}, v.lower
    from unnest(${rows.map((x) => x.peId)}::bigint[], ${rows.map((x) => x.status)}::text[],
                ${rows.map((x) => x.ceId)}::bigint[], ${rows.map((x) => x.lower)}::text[])
      with ordinality as v(pe_id, status, ce_id, lower, n)
    order by v.n
    returning id, program_enrollment_id as "peId", course_enrollment_id as "ceId"`;
}

/** The PCEs holding these CEs, with their statuses. */
export async function holdersOfCourseEnrollments(
  tx: Tx,
  ceIds: readonly number[],
): Promise<Array<{ id: number; ceId: number; status: CourseStatus }>> {
  if (ceIds.length === 0) return [];
  return tx<{ id: number; ceId: number; status: CourseStatus }[]>`
    select pce.id, pce.course_enrollment_id as "ceId", pce.status
    from unnest(${ceIds as number[]}::bigint[]) as c(id)
    join program_course_enrollments pce on pce.course_enrollment_id = c.id`;
}

/** Points PCEs at their CEs (or none); returns the ones that changed, with the CE they held before. */
export async function setPceCourseEnrollments(
  tx: Tx,
  rows: ReadonlyArray<{ pceId: number; ceId: number | null }>,
): Promise<Array<{ id: number; peId: number; old: number | null; ceId: number | null }>> {
  return tx<{ id: number; peId: number; old: number | null; ceId: number | null }[]>`
    with v as (
      select * from unnest(${rows.map((r) => r.pceId)}::bigint[], ${rows.map((r) => r.ceId)}::bigint[]) as v(id, ce_id)
    ), old as (
      select pce.id, pce.course_enrollment_id as old_ce from program_course_enrollments pce join v on v.id = pce.id
    )
    update program_course_enrollments pce set course_enrollment_id = v.ce_id, modified_at = now()
    from v, old
    where pce.id = v.id and old.id = v.id and pce.course_enrollment_id is distinct from v.ce_id
    returning pce.id, pce.program_enrollment_id as "peId", old.old_ce as old, v.ce_id as "ceId"`;
}

/** The PCEs' copies of their PE's key, after retirement. */
export async function setPceKeysOfEnrollments(tx: Tx, rows: ReadonlyArray<{ id: number; key: string }>): Promise<void> {
  await tx`
    update program_course_enrollments pce set student_key_lower = v.key, modified_at = now()
    from unnest(${rows.map((r) => r.id)}::bigint[], ${rows.map((r) => r.key)}::text[]) as v(id, key) where pce.program_enrollment_id = v.id`;
}
