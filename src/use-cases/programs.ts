import type { Sql } from 'postgres';
import type { UpsertProgramPayload } from '../contract/payloads.js';
import type { Queryable } from '../db/client.js';
import {
  deleteCurricula,
  deleteProgramCourses,
  insertProgramCourse,
  loadProgram,
  setOrganizationOfPces,
  setOrganizationOfProgramEnrollments,
  upsertCourse,
  upsertCurriculum,
  upsertProgramRow,
} from '../db/programs.js';
import { JobRejectedError } from '../domain/errors.js';
import type { Program } from '../domain/program.js';

/** Loads the job's program, or rejects the job as docs/contract.md "Queues" says. */
export async function requireProgram(sql: Queryable, programUuid: string): Promise<Program> {
  const program = await loadProgram(sql, programUuid);
  if (!program) throw new JobRejectedError(`unknown program ${programUuid}`);
  return program;
}

/** `upsert-program`: loads or replaces one program's catalog entry, in one transaction. */
export async function upsertProgram(sql: Sql, p: UpsertProgramPayload): Promise<void> {
  await sql.begin(async (tx) => {
    await upsertProgramRow(tx, p);
    await deleteCurricula(tx, p.program_uuid);
    for (const [position, c] of p.curricula.entries()) await upsertCurriculum(tx, p.program_uuid, position, c);
    await deleteProgramCourses(tx, p.program_uuid);
    for (const [position, c] of p.courses.entries()) {
      await upsertCourse(tx, c);
      await insertProgramCourse(tx, p.program_uuid, position, c);
    }
    await setOrganizationOfProgramEnrollments(tx, p.program_uuid, p.organization_key);
    await setOrganizationOfPces(tx, p.program_uuid, p.organization_key);
  });
}
