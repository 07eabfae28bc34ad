import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { type Queryable, refreshStatistics, type Tx } from '../db/client.js';
import { claimChunk, findResult, loadChunks, storeChunk, storeResult } from '../db/job-ledger.js';
import { type SentRecord, separateDuplicates, summarize, type WriteResult } from '../domain/write-results.js';
import type { LearnerCourse } from '../lock/learner-course-locks.js';
import type { JobContext } from './context.js';
import { coerceError, isTransient, LockBusyError } from './errors.js';

/** Progress is reported at least this often (CONTRACT: every 1,000 records). */
const MAX_CHUNK = 1_000;

export interface ChunkedWrite<R extends SentRecord> {
  name: 'write-program-enrollments' | 'write-program-course-enrollments' | 'write-program-course-enrollments-upload';
  records: readonly R[];
  /** The learner-course pairs a chunk will write, for the Redis locks. */
  lockPairs(sql: Queryable, chunk: readonly R[]): Promise<LearnerCourse[]>;
  /** The tables the job grows, whose statistics it keeps fresh while it runs. */
  tables: readonly string[];
  /** Applies one chunk inside its transaction; returns each record's result by its sent key. */
  applyChunk(tx: Tx, chunk: readonly R[]): Promise<Record<string, string>>;
}

/**
 * The bulk write loop shared by both write jobs. Duplicates are settled over the whole job first;
 * the rest is applied in chunks, each in one transaction that also records the chunk's results,
 * so a job run again (a stall, a crash, a busy lock) skips what is applied and returns the same
 * results. Awaiting Postgres between chunks keeps the event loop free for BullMQ's lock renewal.
 */
export async function runChunkedWrite<R extends SentRecord>(
  job: JobContext,
  write: ChunkedWrite<R>,
  ledgerKey: string = job.key,
): Promise<WriteResult> {
  // The ledger entry this write keeps its chunks and result under: the job's own, or, for a job
  // that runs several writes (a course upload, one per course), one of its own per write.
  const ctx: JobContext = ledgerKey === job.key ? job : { ...job, key: ledgerKey };
  const { sql } = ctx.database;
  const total = write.records.length;
  const earlier = await earlierResult<WriteResult>(ctx, total);
  if (earlier) return earlier;

  const { duplicated } = separateDuplicates(write.records);
  // Null prototype: a student key may be any string, `__proto__` included.
  const results: Record<string, string> = Object.create(null);
  for (const spelling of duplicated) results[spelling] = 'duplicated';
  const applies = (r: R) => !duplicated.has(r.sent);

  // Chunks are ranges of the records as sent (duplicates take their place but are not applied),
  // so progress advances by at most a chunk and a chunk's position names it in the ledger.
  const chunkSize = Math.min(ctx.config.WRITE_CHUNK_SIZE, MAX_CHUNK);
  const finished = await loadChunks(sql, ctx.key);
  const starts = [...finished.keys()].sort((a, b) => a - b);
  let chunkNo = 0;
  for (let start = 0; start < total; ) {
    if (ctx.signal.aborted) throw new Error('the job was cancelled');
    // Follow the bounds of chunks an earlier run applied; cut new ones up to the next of those.
    const applied = finished.get(start);
    const nextApplied = starts.find((s) => s > start) ?? Infinity;
    const size = applied?.size ?? Math.min(chunkSize, nextApplied - start);
    const chunk = write.records.slice(start, start + size).filter(applies);
    let chunkResults = applied?.results;
    if (!chunkResults && chunk.length > 0) {
      const started = performance.now();
      const lease = await ctx.locks.acquire(await write.lockPairs(sql, chunk));
      if (!lease) throw new LockBusyError();
      try {
        chunkResults = await sql
          .begin(async (tx) => {
            const claim = await claimChunk(tx, ctx.key, start, size);
            if (!claim.claimed) return claim.results;
            const applied = await write.applyChunk(tx, chunk);
            await storeChunk(tx, ctx.key, start, applied);
            return applied;
          })
          .catch((err: unknown) => {
            if (isTransient(err)) throw err;
            ctx.log.error({ start, err: coerceError(err).message }, 'chunk failed; applying its records one by one');
            return applyOneByOne(ctx, write, start, size, chunk);
          });
      } finally {
        await lease.release();
      }
      chunkNo += 1;
      ctx.log.debug({ start, records: chunk.length, ms: Math.round(performance.now() - started) }, 'chunk applied');
      // After chunks 1, 2, 4, 8, …: each time the job has doubled what it wrote.
      if (total > chunkSize && (chunkNo & (chunkNo - 1)) === 0) await refreshStatistics(sql, write.tables);
    }
    if (chunkResults) Object.assign(results, chunkResults);
    start += size;
    if (start < total) await ctx.progress(start, total);
    await yieldToEventLoop();
  }

  const summary = await sql.begin((tx) => storeResult(tx, ctx.key, summarize(results)));
  for (const [result, n] of Object.entries(summary.counts))
    ctx.metrics.writeResults.inc({ name: write.name, result }, n);
  await ctx.progress(total, total);
  ctx.log.info({ records: total, code: summary.code, counts: summary.counts }, 'write applied');
  return summary;
}

/**
 * The result of a job that already finished (run again, or re-submitted under its jobId), looked up
 * before anything else: the catalog may have changed since, and the job must answer as it did.
 */
export async function earlierResult<T>(ctx: JobContext, total: number): Promise<T | undefined> {
  const earlier = await findResult<T>(ctx.database.sql, ctx.key);
  if (earlier !== undefined) {
    // A run that finished but whose completion never reached BullMQ (a crash, a Redis outage
    // longer than the job lock): one indexed read, nothing applied again.
    ctx.log.info({ ledgerKey: ctx.key }, 'job already finished; answering with its recorded result');
    await ctx.progress(total, total);
  }
  return earlier;
}

/**
 * The fallback for a chunk that failed for a reason retrying does not cure: each record in its own
 * savepoint, so one bad record becomes `internal-error` and the rest of the chunk still applies.
 */
async function applyOneByOne<R extends SentRecord>(
  ctx: JobContext,
  write: ChunkedWrite<R>,
  start: number,
  size: number,
  chunk: readonly R[],
): Promise<Record<string, string>> {
  return ctx.database.sql.begin(async (tx) => {
    const claim = await claimChunk(tx, ctx.key, start, size);
    if (!claim.claimed) return claim.results;
    const results: Record<string, string> = Object.create(null);
    for (const record of chunk) {
      try {
        Object.assign(results, await tx.savepoint((sp) => write.applyChunk(sp, [record])));
      } catch (err) {
        if (isTransient(err)) throw err;
        ctx.log.error({ start, record: record.index, err: coerceError(err).message }, 'record could not be applied');
        results[record.sent] = 'internal-error';
      }
    }
    await storeChunk(tx, ctx.key, start, results);
    return results;
  });
}
