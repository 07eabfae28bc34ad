import type { Tx } from '../db/client.js';
import { claimResult, findResult, storeResult } from '../db/job-ledger.js';
import type { LearnerCourse } from '../lock/learner-course-locks.js';
import type { JobContext } from './context.js';
import { LockBusyError } from './errors.js';

/**
 * Runs `work` holding the learner-course locks of `pairs` (all or none): a busy lock delays the job
 * (LockBusyError) without using an attempt. The locks are released whatever happens.
 */
export async function withLease<T>(
  ctx: JobContext,
  pairs: readonly LearnerCourse[],
  work: () => Promise<T>,
): Promise<T> {
  const lease = await ctx.locks.acquire(pairs);
  if (!lease) throw new LockBusyError();
  try {
    return await work();
  } finally {
    await lease.release();
  }
}

/**
 * The result of a job that already finished (run again, or re-submitted under its jobId), looked up
 * before anything else: the catalog may have changed since, and the job must answer as it did.
 */
export async function earlierResult<T>(ctx: JobContext, total: number, key: string = ctx.key): Promise<T | undefined> {
  const earlier = await findResult<T>(ctx.database.sql, key);
  if (earlier !== undefined) await answeringEarlier(ctx, total, key);
  return earlier;
}

/** Says that the job answers with the result found by `earlierResult` (or a batch's look-up of several). */
export async function answeringEarlier(ctx: JobContext, total: number, key: string): Promise<void> {
  // Also a run that finished but whose completion never reached BullMQ (a crash, a Redis outage
  // longer than the job lock): one indexed read, nothing applied again.
  ctx.log.info({ ledgerKey: key }, 'job already finished; answering with its recorded result');
  await ctx.progress(total, total);
}

export interface OnceWork<R> {
  /** The ledger key; the job's own unless the job is an event remembered by its event_id. */
  key?: string;
  /** The learner-course pairs the work writes, read before the transaction (beside the earlier result). */
  lockPairs?: () => Promise<LearnerCourse[]>;
  /** The use case, in the transaction that claims the key and stores its result. */
  apply(tx: Tx): Promise<R>;
}

/**
 * Runs a job's use case exactly once (docs/rules.md rule 13): a finished job returns its stored
 * result; otherwise, under the locks, one transaction claims the key (a concurrent run of the same
 * job waits on it, then finds the result), applies the use case and stores the result.
 */
export async function runOnce<R>(ctx: JobContext, work: OnceWork<R>): Promise<R> {
  const key = work.key ?? ctx.key;
  // Both reads at once: a round trip fewer for every job, a wasted read only for a replay.
  const [earlier, pairs] = await Promise.all([earlierResult<R>(ctx, 1, key), work.lockPairs?.() ?? []]);
  if (earlier !== undefined) return earlier;
  return withLease(
    ctx,
    pairs,
    async () =>
      // postgres.js types a transaction's value as if R could be an array of promises; it is not.
      (await ctx.database.sql.begin(async (tx) => {
        const claim = await claimResult<R>(tx, key);
        if (!claim.claimed) return claim.result;
        return storeResult(tx, key, await work.apply(tx));
      })) as R,
  );
}
