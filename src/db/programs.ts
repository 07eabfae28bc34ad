import type { UpsertProgramPayload } from '../contract/payloads.js';
import type { Program } from '../domain/program.js';
import type { Queryable, Tx } from './client.js';

export async function loadProgram(sql: Queryable, programUuid: string): Promise<Program | null> {
  const [program] = await sql<{ programUuid: string; programKey: string | null; organizationKey: string }[]>`
    select program_uuid as "programUuid", program_key as "programKey", organization_key as "organizationKey"
    from programs where program_uuid = ${programUuid}`;
  if (!program) return null;
  const curricula = await sql<{ curriculumUuid: string; isActive: boolean; courseKeys: string[] }[]>`
    select curriculum_uuid as "curriculumUuid", is_active as "isActive", course_keys as "courseKeys"
    from curricula where program_uuid = ${programUuid} order by position`;
  const courses = await sql<{ courseKey: string; externalCourseKey: string | null }[]>`
    select course_key as "courseKey", external_course_key as "externalCourseKey"
    from program_courses where program_uuid = ${programUuid}`;
  return {
    ...program,
    curricula: [...curricula],
    externalCourseKeys: new Map(courses.map((c) => [c.courseKey, c.externalCourseKey])),
  };
}

/** The enrollment modes a course offers; a course the catalog never listed offers the defaults. */
export async function courseModes(sql: Queryable, courseKeys: readonly string[]): Promise<Map<string, string[]>> {
  const rows = await sql<{ courseKey: string; modes: string[] }[]>`
    select course_key as "courseKey", modes from courses where course_key = any(${courseKeys as string[]})`;
  const modes = new Map(rows.map((r) => [r.courseKey, r.modes]));
  for (const key of courseKeys) if (!modes.has(key)) modes.set(key, ['audit', 'masters']);
  return modes;
}

type Catalog = UpsertProgramPayload;

export async function upsertProgramRow(tx: Tx, p: Catalog): Promise<void> {
  await tx`
    insert into programs (program_uuid, program_key, organization_key)
    values (${p.program_uuid}, ${p.program_key ?? null}, ${p.organization_key})
    on conflict (program_uuid) do update
      set program_key = excluded.program_key, organization_key = excluded.organization_key, modified_at = now()`;
}

export async function deleteCurricula(tx: Tx, programUuid: string): Promise<void> {
  await tx`delete from curricula where program_uuid = ${programUuid}`;
}

export async function upsertCurriculum(
  tx: Tx,
  programUuid: string,
  position: number,
  c: Catalog['curricula'][number],
): Promise<void> {
  await tx`
    insert into curricula (curriculum_uuid, program_uuid, position, is_active, course_keys)
    values (${c.curriculum_uuid}, ${programUuid}, ${position}, ${c.is_active}, ${c.course_keys})
    on conflict (curriculum_uuid) do update
      set program_uuid = excluded.program_uuid, position = excluded.position,
          is_active = excluded.is_active, course_keys = excluded.course_keys`;
}

export async function deleteProgramCourses(tx: Tx, programUuid: string): Promise<void> {
  await tx`delete from program_courses where program_uuid = ${programUuid}`;
}

export async function upsertCourse(tx: Tx, c: Catalog['courses'][number]): Promise<void> {
  await tx`
    insert into courses (course_key, modes) values (${c.course_key}, ${c.modes})
    on conflict (course_key) do update set modes = excluded.modes`;
}

/** `position`: where upsert-program listed the course, the order of the catalog read. */
export async function insertProgramCourse(
  tx: Tx,
  programUuid: string,
  position: number,
  c: Catalog['courses'][number],
): Promise<void> {
  await tx`
    insert into program_courses (program_uuid, course_key, external_course_key, position)
    values (${programUuid}, ${c.course_key}, ${c.external_course_key ?? null}, ${position})
    on conflict do nothing`;
}

/** A learner is (organization, key): the copies on the program's PEs follow the program's organization. */
export async function setOrganizationOfProgramEnrollments(tx: Tx, programUuid: string, organizationKey: string) {
  await tx`
    update program_enrollments set organization_key = ${organizationKey}
    where program_uuid = ${programUuid} and organization_key <> ${organizationKey}`;
}

/** The same for the copies on the program's PCEs. */
export async function setOrganizationOfPces(tx: Tx, programUuid: string, organizationKey: string) {
  await tx`
    update program_course_enrollments pce set organization_key = ${organizationKey}
    from program_enrollments pe
    where pce.program_enrollment_id = pe.id and pe.program_uuid = ${programUuid}
      and pce.organization_key <> ${organizationKey}`;
}
