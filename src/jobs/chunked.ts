import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { refreshStatistics } from '../db/client.js';
import { claimChunk, loadChunks, storeChunk, storeResult } from '../db/job-ledger.js';
import { duplicatedSpellings, type SentRecord, summarize, type WriteResult } from '../domain/write-results.js';
import type { ChunkedWork } from '../use-cases/chunked-work.js';
import type { JobContext } from './context.js';
import { asRetryable, coerceError } from './errors.js';
import { earlierResult, withLease } from './ledger.js';

/** Progress is reported at least this often (docs/contract.md: every 1,000 records). */
const MAX_CHUNK = 1_000;

/**
 * The chunk loop shared by the bulk writes and explicit linking. Duplicates are settled over the
 * whole job first; the rest is applied in chunks, each in one transaction that also records the
 * chunk's results under `ledgerKey`, so a job run again (a stall, a crash, a busy lock) skips what
 * is applied and returns the same results. Awaiting Postgres between chunks keeps the event loop
 * free for BullMQ's lock renewal. Returns every record's result by its sent key.
 */
export async function runChunks<R extends SentRecord>(
  ctx: JobContext,
  work: ChunkedWork<R>,
  ledgerKey: string = ctx.key,
): Promise<Record<string, string>> {
  const { sql } = ctx.database;
  const total = work.records.length;
  const duplicated = duplicatedSpellings(work.records);
  // Null prototype: a student key may be any string, `__proto__` included.
  const results: Record<string, string> = Object.create(null);
  for (const spelling of duplicated) results[spelling] = work.duplicated(spelling);
  const applies = (r: R) => !duplicated.has(r.sent);

  // Chunks are ranges of the records as sent (duplicates take their place but are not applied),
  // so progress advances by at most a chunk and a chunk's position names it in the ledger.
  const chunkSize = Math.min(ctx.config.WRITE_CHUNK_SIZE, MAX_CHUNK, work.maxChunk ?? MAX_CHUNK);
  const finished = await loadChunks(sql, ledgerKey);
  const starts = [...finished.keys()].sort((a, b) => a - b);
  let chunkNo = 0;
  // The statistics are refreshed beside the chunks, on a connection of their own: the next chunk
  // need not wait for them, and one refresh at a time is enough.
  let refreshing: Promise<void> | null = null;
  const refresh = () => {
    refreshing ??= refreshStatistics(sql, work.tables)
      .catch((err: unknown) => ctx.log.warn({ err: coerceError(err).message }, 'refreshing statistics failed'))
      .finally(() => {
        refreshing = null;
      });
  };
  for (let start = 0; start < total; ) {
    if (ctx.signal.aborted) throw new Error('the job was cancelled');
    // Follow the bounds of chunks an earlier run applied; cut new ones up to the next of those.
    const applied = finished.get(start);
    const nextApplied = starts.find((s) => s > start) ?? Infinity;
    const size = applied?.size ?? Math.min(chunkSize, nextApplied - start);
    const chunk = work.records.slice(start, start + size).filter(applies);
    let chunkResults = applied?.results;
    if (!chunkResults && chunk.length > 0) {
      const started = performance.now();
      chunkResults = await withLease(ctx, await work.lockPairs(sql, chunk), () =>
        sql
          .begin(async (tx) => {
            const claim = await claimChunk(tx, ledgerKey, start, size);
            if (!claim.claimed) return claim.results;
            const applied = await work.applyChunk(tx, chunk);
            await storeChunk(tx, ledgerKey, start, applied);
            return applied;
          })
          .catch((err: unknown) => {
            if (asRetryable(err)) throw err;
            ctx.log.error({ start, err: coerceError(err).message }, 'chunk failed; applying its records one by one');
            return applyOneByOne(ctx, work, ledgerKey, start, size, chunk);
          }),
      );
      chunkNo += 1;
      ctx.log.debug({ start, records: chunk.length, ms: Math.round(performance.now() - started) }, 'chunk applied');
      // After chunks 1, 2, 4, 8, …: each time the job has doubled what it wrote.
      if (work.tables.length && total > chunkSize && (chunkNo & (chunkNo - 1)) === 0) refresh();
    }
    if (chunkResults) Object.assign(results, chunkResults);
    start += size;
    if (start < total) await ctx.progress(start, total);
    await yieldToEventLoop();
  }
  await refreshing;
  return results;
}

/**
 * The fallback for a chunk that failed for a reason retrying does not cure: each record in its own
 * savepoint, so one bad record gets its failure result and the rest of the chunk still applies.
 */
async function applyOneByOne<R extends SentRecord>(
  ctx: JobContext,
  work: ChunkedWork<R>,
  ledgerKey: string,
  start: number,
  size: number,
  chunk: readonly R[],
): Promise<Record<string, string>> {
  return ctx.database.sql.begin(async (tx) => {
    const claim = await claimChunk(tx, ledgerKey, start, size);
    if (!claim.claimed) return claim.results;
    const results: Record<string, string> = Object.create(null);
    for (const record of chunk) {
      try {
        Object.assign(results, await tx.savepoint((sp) => work.applyChunk(sp, [record])));
      } catch (raw) {
        if (asRetryable(raw)) throw raw;
        const err = coerceError(raw);
        ctx.log.error({ start, record: record.index, err: err.message }, 'record could not be applied');
        results[record.sent] = work.failed(err);
      }
    }
    await storeChunk(tx, ledgerKey, start, results);
    return results;
  });
}

/**
 * A bulk write (docs/contract.md "Queues"): the chunks, then the job's result (`code`, `results`,
 * `counts`) stored under `ledgerKey` so that every later run returns it.
 */
export async function runChunkedWrite<R extends SentRecord>(
  ctx: JobContext,
  name: string,
  work: ChunkedWork<R>,
  ledgerKey: string = ctx.key,
): Promise<WriteResult> {
  const total = work.records.length;
  const earlier = await earlierResult<WriteResult>(ctx, total, ledgerKey);
  if (earlier) return earlier;
  const results = await runChunks(ctx, work, ledgerKey);
  const summary = await ctx.database.sql.begin((tx) => storeResult(tx, ledgerKey, summarize(results)));
  for (const [result, n] of Object.entries(summary.counts)) ctx.metrics.writeResults.inc({ name, result }, n);
  await ctx.progress(total, total);
  ctx.log.info({ records: total, code: summary.code, counts: summary.counts }, 'write applied');
  return summary;
}
