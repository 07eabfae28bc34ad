import type { Queryable, Tx } from './client.js';

/**
 * The job ledger: what makes a job's effects apply once under at-least-once delivery.
 *  - `job_results` holds a finished job's result under its key (its jobId, or an event_id);
 *    a job run again, or re-submitted, finds it and applies nothing.
 *  - `job_chunks` holds the results of each committed chunk of a bulk job, written in the chunk's
 *    own transaction, so a run after a crash skips what is already applied. The rows stay until
 *    the daily expiry forgets them, so a run that started before another finished still finds them.
 * Claiming a key inserts its row first: a second run of the same job at the same moment waits
 * on that row and then sees it taken.
 */
export async function findResult<R>(sql: Queryable, key: string): Promise<R | undefined> {
  const [row] = await sql<
    { result: R }[]
  >`select result from job_results where key = ${key} and result <> 'null'::jsonb`;
  return row?.result;
}

/** Claims `key` inside `tx`; returns the earlier result when another run already finished it. */
export async function claimResult<R>(tx: Tx, key: string): Promise<{ claimed: true } | { claimed: false; result: R }> {
  const [claimed] = await tx`
    insert into job_results (key, result) values (${key}, 'null'::jsonb) on conflict (key) do nothing returning key`;
  if (claimed) return { claimed: true };
  const [row] = await tx<{ result: R }[]>`select result from job_results where key = ${key}`;
  return { claimed: false, result: row!.result };
}

/**
 * Stores a job's result unless a run of the same job stored one first, and returns the one that
 * stands: every run of a job answers with its first complete result.
 */
export async function storeResult<R>(tx: Tx, key: string, result: R): Promise<R> {
  const [stored] = await tx<{ result: R }[]>`
    insert into job_results (key, result, finished_at) values (${key}, ${JSON.stringify(result)}::jsonb, now())
    on conflict (key) do update set result = excluded.result, finished_at = now()
      where job_results.result = 'null'::jsonb
    returning result`;
  if (stored) return stored.result;
  const [earlier] = await tx<{ result: R }[]>`select result from job_results where key = ${key}`;
  return earlier!.result;
}

export interface AppliedChunk {
  size: number;
  results: Record<string, string>;
}

/** The committed chunks of a job, by the position of their first record. */
export async function loadChunks(sql: Queryable, key: string): Promise<Map<number, AppliedChunk>> {
  const rows = await sql<{ start: number; size: number; results: Record<string, string> }[]>`
    select start, size, results from job_chunks where key = ${key} and results <> 'null'::jsonb`;
  return new Map(rows.map((r) => [r.start, { size: r.size, results: r.results }]));
}

/**
 * Claims the chunk of `size` records starting at `start`; returns the earlier results when another
 * run already applied it.
 */
export async function claimChunk(
  tx: Tx,
  key: string,
  start: number,
  size: number,
): Promise<{ claimed: true } | { claimed: false; results: Record<string, string> }> {
  const [claimed] = await tx`
    insert into job_chunks (key, start, size, results) values (${key}, ${start}, ${size}, 'null'::jsonb)
    on conflict (key, start) do nothing returning start`;
  if (claimed) return { claimed: true };
  const [row] = await tx<{ size: number; results: Record<string, string> }[]>`
    select size, results from job_chunks where key = ${key} and start = ${start}`;
  // Another run's chunk of another size starts here: retry, and the next run follows its bounds.
  if (row!.size !== size)
    throw Object.assign(new Error('a concurrent run chunked this job differently'), { code: '40001' });
  return { claimed: false, results: row!.results };
}

export async function storeChunk(tx: Tx, key: string, start: number, results: Record<string, string>): Promise<void> {
  await tx`update job_chunks set results = ${JSON.stringify(results)}::jsonb, finished_at = now() where key = ${key} and start = ${start}`;
}
