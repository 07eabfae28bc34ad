import type { Sql } from 'postgres';
import { EVENT_JOB_NAMES, type EventJobName } from '../contract/jobs.js';
import { RetryableError } from '../domain/errors.js';
import type { Queryable, Tx } from './client.js';

/**
 * The keys of the ledger, built here only.
 *  - a job: `<queue>/<jobId>` for a producer-chosen jobId, which names the job for good (so a
 *    re-submission after BullMQ forgot it still returns the first result); BullMQ's own numeric ids
 *    restart when Redis loses its data, so those are qualified with the job's creation time;
 *  - an account event: `<job name>/<event_id>` (docs/contract.md "Account events");
 *  - one course of a course upload: `<job key>#course:<course key>`.
 */
export const ledgerKeys = {
  job: (queue: string, jobId: string, createdAt?: number) =>
    createdAt === undefined ? `${queue}/${jobId}` : `${queue}/${jobId}@${createdAt}`,
  event: (name: EventJobName, eventId: string) => `${name}/${eventId}`,
  course: (jobKey: string, courseKey: string) => `${jobKey}#course:${courseKey}`,
};

/**
 * An advisory lock key of its own: the commit order's gate. Every transaction that takes a
 * `commit_order` value holds it shared until it commits (shared holders never wait on each other);
 * expiry, which deletes by a predicate over every learner's rows rather than under learner locks,
 * takes it exclusively before it looks (`holdCommitOrder`), so that a transaction is visible to the
 * expiry exactly when its value is smaller than the expiry's.
 */
const COMMIT_ORDER_LOCK = 7_104_202_612;

/** The next `commit_order` value, taken with the gate held shared until the transaction ends. */
const nextCommitSeq = (tx: Tx) =>
  tx`(select nextval('commit_order') from pg_advisory_xact_lock_shared(${COMMIT_ORDER_LOCK}::bigint))`;

/**
 * Waits until every transaction that took a `commit_order` value has committed, and keeps new ones
 * from taking one until the calling transaction ends. For a transaction whose reads are not covered
 * by learner locks (expiry): what it sees then is exactly what committed before it in that order.
 */
export async function holdCommitOrder(tx: Tx): Promise<void> {
  await tx`select pg_advisory_xact_lock(${COMMIT_ORDER_LOCK}::bigint)`;
}

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
  return (await findResults<R>(sql, [key])).get(key);
}

/** The finished results of these keys, by key (the ones not finished are missing). */
export async function findResults<R>(sql: Queryable, keys: readonly string[]): Promise<Map<string, R>> {
  const rows = await sql<{ key: string; result: R }[]>`
    select key, result from job_results where key = any(${keys as string[]}::text[]) and result <> 'null'::jsonb`;
  return new Map(rows.map((r) => [r.key, r.result]));
}

/** Claims `key` inside `tx`; returns the earlier result when another run already finished it. */
export async function claimResult<R>(tx: Tx, key: string): Promise<{ claimed: true } | { claimed: false; result: R }> {
  const earlier = (await claimResults<R>(tx, [key])).get(key);
  return earlier === undefined ? { claimed: true } : { claimed: false, result: earlier };
}

/**
 * Claims the keys inside `tx`, in sorted order (two transactions claiming some of the same keys
 * never deadlock on them); returns, by key, the earlier results of the ones another run already
 * finished. The keys are distinct.
 */
export async function claimResults<R>(tx: Tx, keys: readonly string[]): Promise<Map<string, R>> {
  const sorted = [...keys].sort();
  // Sent together (one round trip), run in this order: the select sees the rows the insert
  // claimed (null) and those it waited for, finished by another run.
  const [, rows] = await Promise.all([
    tx`
      insert into job_results (key, result)
      select k, 'null'::jsonb from unnest(${sorted}::text[]) with ordinality as t(k, n) order by n
      on conflict (key) do nothing`,
    tx<{ key: string; result: R }[]>`
      select key, result from job_results where key = any(${sorted}::text[]) and result <> 'null'::jsonb`,
  ]);
  return new Map(rows.map((r) => [r.key, r.result]));
}

/**
 * Stores a job's result unless a run of the same job stored one first, and returns the one that
 * stands: every run of a job answers with its first complete result. The stored row takes the
 * transaction's place in `commit_order` (schema.ts): a job run once stores its result as the last
 * statement of the transaction that applied it, when every row lock it needs is held.
 */
// Results travel as JSON text: a parameter typed jsonb would be JSON-encoded a second time by postgres.js.
export async function storeResult<R>(tx: Tx, key: string, result: R): Promise<R> {
  return (await storeResults(tx, [{ key, result }]))[0]!;
}

/**
 * `storeResult` for several keys in one statement (a batch of account events), each row taking a
 * `commit_order` value of its own, in the order given; returns the results that stand, in that order.
 */
export async function storeResults<R>(tx: Tx, entries: ReadonlyArray<{ key: string; result: R }>): Promise<R[]> {
  const stored = await tx<{ key: string; result: R }[]>`
    with gate as (select pg_advisory_xact_lock_shared(${COMMIT_ORDER_LOCK}::bigint))
    insert into job_results (key, result, finished_at, commit_seq)
    select v.key, v.result::jsonb, now(), nextval('commit_order')
    from gate, unnest(${entries.map((e) => e.key)}::text[], ${entries.map((e) => JSON.stringify(e.result))}::text[])
      with ordinality as v(key, result, n)
    order by v.n
    on conflict (key) do update set result = excluded.result, finished_at = now(), commit_seq = excluded.commit_seq
      where job_results.result = 'null'::jsonb
    returning key, result`;
  const standing = new Map(stored.map((r) => [r.key, r.result]));
  const missing = entries.filter((e) => !standing.has(e.key)).map((e) => e.key);
  if (missing.length) for (const [key, result] of await findResults<R>(tx, missing)) standing.set(key, result);
  return entries.map((e) => standing.get(e.key)!);
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
  if (row!.size !== size) throw new RetryableError('a concurrent run chunked this job differently');
  return { claimed: false, results: row!.results };
}

/** Stores a chunk's results as the last statement of the chunk's transaction, taking its place in `commit_order`. */
export async function storeChunk(tx: Tx, key: string, start: number, results: Record<string, string>): Promise<void> {
  await tx`
    update job_chunks set results = ${JSON.stringify(results)}::text::jsonb, finished_at = now(), commit_seq = ${nextCommitSeq(tx)}
    where key = ${key} and start = ${start}`;
}

/** A job's transactions in the order they committed: its chunks' and its result's `commit_order` values. */
export interface CommittedUnit {
  key: string;
  /** The chunk's first record; null for a result stored by the transaction that applied the job. */
  start: number | null;
  commitSeq: number;
  results: unknown;
}

/** Every ledger row that took a `commit_order` value, oldest commit first. */
export async function committedUnits(sql: Queryable): Promise<CommittedUnit[]> {
  return sql<CommittedUnit[]>`
    select key, start, commit_seq::float8 as "commitSeq", results from job_chunks where commit_seq is not null
    union all
    select key, null, commit_seq::float8, result from job_results where commit_seq is not null
    order by 3`;
}

/** The patterns (`like`) of the event keys, which are kept longer than job results. */
const EVENT_KEY_PATTERNS = EVENT_JOB_NAMES.map((name) => ledgerKeys.event(name, '%'));

/** Forgets event results older than `eventDays` and other results, chunks and submissions older than `jobDays`. */
export async function forgetFinished(tx: Tx, eventDays: number, jobDays: number): Promise<void> {
  await tx`
    delete from job_results
    where key like any(${EVENT_KEY_PATTERNS}::text[])
      and finished_at < now() - make_interval(days => ${eventDays})`;
  await tx`
    delete from job_results
    where not key like any(${EVENT_KEY_PATTERNS}::text[])
      and finished_at < now() - make_interval(days => ${jobDays})`;
  await tx`delete from job_chunks where finished_at < now() - make_interval(days => ${jobDays})`;
  await tx`delete from submitted_jobs where created_at < now() - make_interval(days => ${jobDays})`;
}

/**
 * Remembers a job the service submitted itself (an upload), so its status outlives BullMQ's copy;
 * with its program (whose organization may read it) and who asked for it.
 */
export async function recordSubmittedJob(
  sql: Sql,
  job: { jobId: string; queue: string; name: string; programUuid: string; requestedBy: string },
): Promise<void> {
  await sql`
    insert into submitted_jobs (job_id, queue, name, program_uuid, requested_by)
    values (${job.jobId}, ${job.queue}, ${job.name}, ${job.programUuid}, ${job.requestedBy})`;
}

export async function forgetSubmittedJob(sql: Sql, jobId: string): Promise<void> {
  await sql`delete from submitted_jobs where job_id = ${jobId}`;
}

export interface SubmittedJob {
  queue: string;
  name: string;
  createdAt: Date;
  requestedBy: string | null;
  /** The stored result, when the job finished. */
  result: unknown;
}

export async function findSubmittedJob(sql: Sql, jobId: string): Promise<SubmittedJob | null> {
  const [submitted] = await sql<{ queue: string; name: string; createdAt: Date; requestedBy: string | null }[]>`
    select queue, name, created_at as "createdAt", requested_by as "requestedBy"
    from submitted_jobs where job_id = ${jobId}`;
  if (!submitted) return null;
  const result = await findResult<unknown>(sql, ledgerKeys.job(submitted.queue, jobId));
  return { ...submitted, result: result ?? null };
}

/** The program of a job the service submitted itself, or null (not one of those, or before programs were kept). */
export async function submittedJobProgram(sql: Queryable, jobId: string): Promise<string | null> {
  const [row] = await sql<{ programUuid: string | null }[]>`
    select program_uuid as "programUuid" from submitted_jobs where job_id = ${jobId}`;
  return row?.programUuid ?? null;
}
