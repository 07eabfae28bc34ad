import type { Tx } from './client.js';

/** Grants the course staff role; returns the grants that were not there yet. */
export async function insertStaffRoles(
  tx: Tx,
  roles: ReadonlyArray<{ userId: number; courseKey: string }>,
): Promise<Array<{ userId: number; courseKey: string }>> {
  if (roles.length === 0) return [];
  return tx<{ userId: number; courseKey: string }[]>`
    insert into course_staff_roles (user_id, course_key)
    select * from unnest(${roles.map((r) => r.userId)}::bigint[], ${roles.map((r) => r.courseKey)}::text[])
    on conflict do nothing
    returning user_id as "userId", course_key as "courseKey"`;
}

/** Revokes the course staff role; returns the accounts that held it. */
export async function deleteStaffRoles(tx: Tx, courseKey: string, userIds: readonly number[]): Promise<number[]> {
  const rows = await tx<{ userId: number }[]>`
    delete from course_staff_roles where course_key = ${courseKey} and user_id = any(${userIds as number[]}::bigint[])
    returning user_id as "userId"`;
  return rows.map((r) => r.userId);
}

/** Records staff roles waiting on PCEs of waiting learners; returns the PCEs that had none. */
export async function insertPendingRoles(tx: Tx, pceIds: readonly number[]): Promise<number[]> {
  const rows = await tx<{ pceId: number }[]>`
    insert into pending_role_assignments (program_course_enrollment_id) select unnest(${pceIds as number[]}::bigint[])
    on conflict do nothing
    returning program_course_enrollment_id as "pceId"`;
  return rows.map((r) => r.pceId);
}

/** Drops the staff roles waiting on these PCEs; returns the PCEs that had one. */
export async function deletePendingRoles(tx: Tx, pceIds: readonly number[]): Promise<number[]> {
  const rows = await tx<{ pceId: number }[]>`
    delete from pending_role_assignments where program_course_enrollment_id = any(${pceIds as number[]}::bigint[])
    returning program_course_enrollment_id as "pceId"`;
  return rows.map((r) => r.pceId);
}

/**
 * Takes the roles waiting on the PCEs of these PEs away; returns each as the account and course it
 * is for now, with the organization of the program that granted it. By PE, not by PCE, so that it
 * goes out with the statement that reads the PCEs (one round trip, not two).
 */
export async function takePendingRolesOfEnrollments(
  tx: Tx,
  peIds: readonly number[],
): Promise<Array<{ userId: number; courseKey: string; orgKey: string }>> {
  if (peIds.length === 0) return [];
  return tx<{ userId: number; courseKey: string; orgKey: string }[]>`
    delete from pending_role_assignments p
    using unnest(${peIds as number[]}::bigint[]) as l(id), program_course_enrollments pce, program_enrollments pe
    where pce.program_enrollment_id = l.id and p.program_course_enrollment_id = pce.id and pe.id = l.id
    returning pe.user_id as "userId", pce.course_key as "courseKey", pe.organization_key as "orgKey"`;
}
