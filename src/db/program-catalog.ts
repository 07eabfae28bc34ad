import type { Queryable } from './client.js';

/**
 * The catalog reads of the HTTP API (docs/contract.md "HTTP": `GET /api/v1/programs`, `GET
 * /api/v1/programs/{program_uuid}`) and the lookups its access guard needs, over the tables
 * `upsert-program` fills (db/programs.ts).
 */

export interface ProgramSummary {
  programUuid: string;
  programKey: string | null;
  organizationKey: string;
}

/**
 * The programs of the given organizations (every program when `organizations` is null), sorted by
 * program_uuid: the uuid type sorts by its bytes, the code-point order of its lowercase text.
 */
export async function listPrograms(sql: Queryable, organizations: readonly string[] | null): Promise<ProgramSummary[]> {
  return sql<ProgramSummary[]>`
    select program_uuid as "programUuid", program_key as "programKey", organization_key as "organizationKey"
    from programs
    ${organizations === null ? sql`` : sql`where organization_key = any(${organizations as string[]})`}
    order by program_uuid`;
}

export interface ProgramCatalog extends ProgramSummary {
  curricula: Array<{ curriculumUuid: string; isActive: boolean; courseKeys: string[] }>;
  courses: Array<{ courseKey: string; externalCourseKey: string | null; modes: string[] }>;
}

/**
 * One program's catalog entry as the last upsert-program left it: curricula and courses in the
 * order it listed them. A course's modes are the course run's own (table `courses`), as every
 * program that lists the run shares them.
 */
export async function programCatalog(sql: Queryable, programUuid: string): Promise<ProgramCatalog | null> {
  const [program] = await sql<ProgramSummary[]>`
    select program_uuid as "programUuid", program_key as "programKey", organization_key as "organizationKey"
    from programs where program_uuid = ${programUuid}`;
  if (!program) return null;
  const curricula = await sql<ProgramCatalog['curricula']>`
    select curriculum_uuid as "curriculumUuid", is_active as "isActive", course_keys as "courseKeys"
    from curricula where program_uuid = ${programUuid} order by position`;
  const courses = await sql<ProgramCatalog['courses']>`
    select pc.course_key as "courseKey", pc.external_course_key as "externalCourseKey",
           coalesce(c.modes, array['audit', 'masters']) as modes
    from program_courses pc left join courses c on c.course_key = pc.course_key
    where pc.program_uuid = ${programUuid}
    order by pc.position, pc.course_key collate "C"`;
  return { ...program, curricula: [...curricula], courses: [...courses] };
}

/** The organization of a program, or null for an unknown program. */
export async function programOrganization(sql: Queryable, programUuid: string): Promise<string | null> {
  const [row] = await sql<{ organizationKey: string }[]>`
    select organization_key as "organizationKey" from programs where program_uuid = ${programUuid}`;
  return row?.organizationKey ?? null;
}
