import type { Queryable } from '../db/client.js';
import { loadProgram } from '../db/programs.js';
import type { Program } from '../domain/program.js';
import { JobRejectedError } from './errors.js';

/** Loads the job's program, or fails the job with the reason CONTRACT.md gives. */
export async function requireProgram(sql: Queryable, programUuid: string): Promise<Program> {
  const program = await loadProgram(sql, programUuid);
  if (!program) throw new JobRejectedError(`unknown program ${programUuid}`);
  return program;
}

/**
 * Keys lower-cased by Postgres itself, in one round trip: the stored `student_key_lower` columns
 * are computed by `lower()`, and JavaScript's case mapping differs from it for some characters.
 */
export async function lowerKeys(sql: Queryable, keys: readonly string[]): Promise<string[]> {
  if (keys.length === 0) return [];
  const rows = await sql<{ lower: string }[]>`
    select lower(k) as lower from unnest(${keys as string[]}::text[]) with ordinality as t(k, n) order by n`;
  return rows.map((r) => r.lower);
}
