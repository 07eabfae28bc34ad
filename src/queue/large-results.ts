import type { Queue } from 'bullmq';
import type { RedisClient } from '../infra/redis.js';
import type { Logger } from '../log.js';

/**
 * Completed jobs that hold a lot (a bulk write's 100,000 records as sent and its 100,000 results:
 * about 12 MB) leave Redis soon after they finish instead of staying with the small ones for a
 * day (KEEP_COMPLETED). Redis runs `noeviction`, so a day of those would stop every queue.
 *
 * Their results stay readable as docs/contract.md promises: a producer waiting for the job reads
 * its full result while it is kept; afterwards the job ledger (Postgres, 7 days) answers for it:
 * the job status and `result.csv` of an upload, and a re-submission under the same jobId, which
 * applies nothing and returns the first result ("Idempotent submission").
 *
 * The result's copy in the queue's event stream goes with the job.
 *
 * Every process checks each job that completes once (two `HSTRLEN`s), whichever process ran it,
 * and records the large ones in a sorted set of its own; they are removed once older than
 * `keepMs`, or beyond the newest `keepCount`, whichever comes first.
 */
export interface LargeResultTrimSettings {
  /** A completed job whose data and result together reach this many bytes is large. */
  minBytes: number;
  /** How long a large completed job stays in Redis. */
  keepMs: number;
  /** At most this many large completed jobs stay, per queue. */
  keepCount: number;
  /** How often the completed set is looked at. */
  everyMs: number;
}

export const LARGE_RESULT_TRIM: Omit<LargeResultTrimSettings, 'keepMs'> = {
  // A 1,000-record write holds about 75 KB; a bulk one of 100,000, about 12 MB.
  minBytes: 128 * 1024,
  keepCount: 10,
  everyMs: 5_000,
};

/** Looked at per round; the rest waits for the next one. */
const BATCH = 1_000;
/** A completed event is looked for this far either side of the job's finishing time, a page at a time. */
const EVENT_SEARCH_MS = 30_000;
const EVENT_PAGE = 500;
const EVENT_SEARCH_PAGES = 20;

export interface LargeResultTrim {
  /** One round now (the timer runs them too); resolves to the jobs removed. */
  round(): Promise<number>;
  stop(): Promise<void>;
}

export function trimLargeResults(
  queues: readonly Queue[],
  redis: RedisClient,
  prefix: string,
  settings: LargeResultTrimSettings,
  log: Logger,
): LargeResultTrim {
  // Under the queue prefix (its hash tag, on a Cluster), beside BullMQ's keys but never one of them:
  // BullMQ's are `<prefix>:<queue>:…` and no queue is named `large-completed`.
  const trackKey = (queue: Queue) => `${prefix}:large-completed:${queue.name}`;
  /** Per queue: completions up to this score (finishedOn, ms) have been looked at. */
  const seenUpTo = new Map<string, number>();

  async function track(queue: Queue): Promise<void> {
    for (;;) {
      const from = seenUpTo.get(queue.name) ?? 0;
      // Inclusive: jobs finishing in the same millisecond as the last one seen are looked at again
      // (ZADD of one already tracked changes nothing).
      const seen = await redis.zrangebyscore(queue.keys.completed!, from, '+inf', 'WITHSCORES', 'LIMIT', 0, BATCH);
      if (seen.length === 0) return;
      const ids: string[] = [];
      const scores: number[] = [];
      for (let i = 0; i < seen.length; i += 2) {
        ids.push(seen[i]!);
        scores.push(Number(seen[i + 1]));
      }
      const sizes = redis.pipeline();
      for (const id of ids) sizes.hstrlen(queue.toKey(id), 'data').hstrlen(queue.toKey(id), 'returnvalue');
      const lengths = ((await sizes.exec()) ?? []).map(([, n]) => Number(n ?? 0));
      const large = redis.pipeline();
      let any = false;
      ids.forEach((id, i) => {
        if (lengths[2 * i]! + lengths[2 * i + 1]! >= settings.minBytes) {
          large.zadd(trackKey(queue), scores[i]!, id);
          any = true;
        }
      });
      if (any) await large.exec();
      const last = scores.at(-1)!;
      // A full batch of one millisecond would be read again forever: step past it.
      const next = last === from && seen.length / 2 === BATCH ? last + 1 : last;
      seenUpTo.set(queue.name, next);
      if (seen.length / 2 < BATCH) return;
    }
  }

  /**
   * BullMQ also writes a job's result into the queue's event stream (its `completed` entry), where
   * it stays until 10,000 later events push it out: on a quiet queue, for good. Listeners had it
   * when the job finished; once the job is gone, so is that entry. It is looked for around the
   * job's finishing time (the worker's clock, which may differ from Redis's by a little).
   */
  async function dropCompletedEvent(queue: Queue, id: string, finishedOn: number): Promise<void> {
    const events = queue.keys.events!;
    let from = String(Math.max(0, finishedOn - EVENT_SEARCH_MS));
    const to = String(finishedOn + EVENT_SEARCH_MS);
    for (let page = 0; page < EVENT_SEARCH_PAGES; page++) {
      const entries = await redis.xrange(events, from, to, 'COUNT', EVENT_PAGE);
      for (const [entryId, fields] of entries) {
        const field = (name: string) => fields[fields.indexOf(name) + 1];
        if (fields[0] === 'event' && fields[1] === 'completed' && field('jobId') === id) {
          await redis.xdel(events, entryId);
          return;
        }
      }
      if (entries.length < EVENT_PAGE) return;
      from = `(${entries.at(-1)![0]}`;
    }
  }

  async function trim(queue: Queue): Promise<number> {
    const key = trackKey(queue);
    const expired = await redis.zrangebyscore(key, '-inf', Date.now() - settings.keepMs);
    const surplus = Math.max(0, (await redis.zcard(key)) - expired.length - settings.keepCount);
    const beyond =
      surplus > 0 ? await redis.zrange(key, String(expired.length), String(expired.length + surplus - 1)) : [];
    let removed = 0;
    for (const id of [...expired, ...beyond]) {
      // Only while it is still the completed job that was tracked: an id removed and added again
      // since names another job, which is not this round's to remove.
      const [tracked, completed] = await Promise.all([redis.zscore(key, id), redis.zscore(queue.keys.completed!, id)]);
      if (tracked !== null && tracked === completed) {
        removed += await queue.remove(id);
        await dropCompletedEvent(queue, id, Number(tracked));
      }
      await redis.zrem(key, id);
    }
    return removed;
  }

  async function round(): Promise<number> {
    let removed = 0;
    for (const queue of queues) {
      await track(queue);
      removed += await trim(queue);
    }
    if (removed > 0) log.info({ removed }, 'removed large completed jobs from Redis; their results stay in Postgres');
    return removed;
  }

  let running: Promise<unknown> | null = null;
  const timer = setInterval(() => {
    // One round at a time: on a slow Redis a round may outlast the interval.
    running ??= round()
      .catch((err: Error) => {
        // Redis away: the outage watch says so; the next round catches up.
        log.debug({ err: err.message }, 'trimming large completed jobs failed');
      })
      .finally(() => {
        running = null;
      });
  }, settings.everyMs);
  timer.unref();
  return {
    round,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
