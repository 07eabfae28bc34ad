import type { Queryable } from '../db/client.js';
import { loadProgram } from '../db/programs.js';
import { JobRejectedError } from '../domain/errors.js';
import type { Program } from '../domain/program.js';

/** Loads the job's program, or rejects the job as docs/contract.md "Jobs" says. */
export async function requireProgram(sql: Queryable, programUuid: string): Promise<Program> {
  const program = await loadProgram(sql, programUuid);
  if (!program) throw new JobRejectedError(`unknown program ${programUuid}`);
  return program;
}
