import os from 'node:os';
import { DelayedError, type Job, UnrecoverableError, type Worker } from 'bullmq';
import { capFailedReason, describeIssues } from '../contract/payloads.js';
import { safeParseInSlices } from '../contract/sliced-parse.js';
import { ledgerKeys } from '../db/job-ledger.js';
import type { RetryableError } from '../domain/errors.js';
import { isLockRenewalFailure, isLostJobLock, isRedisConnectionError, type RedisClient } from '../infra/redis.js';
import type { HandlerRegistry, JobContext, JobDeps } from '../jobs/context.js';
import { asRetryable, coerceError, JobRejectedError, LockBusyError } from '../jobs/errors.js';
import { KEEP_COMPLETED, KEEP_FAILED, metricJobName, QUEUES, type QueueName } from './queues.js';
import { lazyDataChars, ReadableWorker, recordsOfJob, UnreadableJobData } from './readable-job.js';

/**
 * Past this many retries a fault that looked transient is treated as what it is: a failure. A
 * unique violation is usually a race lost to another writer (the retry sees its row), but one
 * that keeps coming back is a real conflict, so it gets fewer.
 */
const MAX_SELF_RETRIES = 100;
const MAX_SELF_RETRIES_ON_UNIQUE_VIOLATION = 5;

/**
 * Puts a job back in the delayed set to run again at `at` (the caller then throws DelayedError). When
 * Redis is away or (a Cluster) moving slots at that moment, the job is left active without its
 * lock renewed: the stall check hands it back once Redis answers (JOB_LOCK_MS), so a fault meant
 * to be retried never turns into a failed job because the retry itself met the fault.
 */
async function comeBackLater(job: Job, at: number, token: string | undefined): Promise<void> {
  try {
    await job.moveToDelayed(at, token);
  } catch (raw) {
    if (!isRedisConnectionError(coerceError(raw))) throw raw;
  }
}

/** The identity of a job across runs (src/db/job-ledger.ts `ledgerKeys`). */
function jobKey(queue: string, job: Job): string {
  const custom = job.opts?.jobId !== undefined && job.opts.jobId !== null;
  return ledgerKeys.job(queue, String(job.id), custom ? undefined : job.timestamp);
}

/**
 * Counts the service's own retries of a job in Redis. BullMQ's `attemptsStarted` also counts the
 * runs that only met a busy learner-course lock, which must not use up the budget.
 */
function selfRetryCounter(redis: RedisClient, prefix: string) {
  const key = (queue: string, job: Job) =>
    `${prefix.replace(/[{}]/g, '')}:self-retries:${queue}:${job.id}@${job.timestamp}`;
  return {
    async allow(queue: string, job: Job, err: RetryableError): Promise<boolean> {
      const k = key(queue, job);
      const [[, n]] = (await redis
        .multi()
        .incr(k)
        .expire(k, 7 * 24 * 3600)
        .exec()) as [[null, number], unknown];
      const max = err.code === '23505' ? MAX_SELF_RETRIES_ON_UNIQUE_VIOLATION : MAX_SELF_RETRIES;
      return n <= max;
    },
    async count(queue: string, job: Job): Promise<number> {
      return Number((await redis.get(key(queue, job))) ?? 0);
    },
  };
}

/**
 * How fast a dead process's work moves on (README, "Faults"). A worker holds a lock on each of its
 * jobs for JOB_LOCK_MS and renews it every JOB_LOCK_RENEW_MS; every worker of every process checks
 * every STALLED_CHECK_MS for active jobs whose lock is gone and puts them back in the queue. A job
 * of a killed process is therefore running again 4 to 6.5 s after the kill, instead of BullMQ's
 * default 30 to 60 s. The price: renewals and checks cost Redis a few commands a second per
 * process, and a process whose event loop stalls for more than JOB_LOCK_MS - JOB_LOCK_RENEW_MS
 * (3.75 s), or that loses Redis that long, has its jobs run again elsewhere, which the job ledger
 * makes harmless (rules.md, rule 13). A job put back more than MAX_STALLED_COUNT times fails
 * instead of taking down process after process; the count is generous because on a starved host a
 * long job may lose its lock several times and every run of it is safe.
 */
export const JOB_LOCK_MS = 5_000;
export const JOB_LOCK_RENEW_MS = 1_250;
export const STALLED_CHECK_MS = 1_500;
export const MAX_STALLED_COUNT = 20;
/** Learner-course leases live as long as a job lock, renewed the same way, for the same reason. */
export const LEARNER_LOCK_TTL_MS = JOB_LOCK_MS;

/**
 * Fair share (docs/contract.md, "Fair share"): a job of more records than this is bulk. Bulk jobs
 * run in BULK_CONCURRENCY slots of their own; the WORKER_CONCURRENCY slots beside them are never
 * all held by bulk work, so a small job starts as soon as it reaches the head of the queue. A bulk
 * job that finds every bulk slot taken goes back to the delayed set for a few seconds, without
 * using an attempt; the time it held a slot was only that of reading it.
 */
export const BULK_JOB_RECORDS = 1_000;
/**
 * A bulk job that finds the bulk slots busy comes back later: after 1 s plus a random spread of
 * 2 s for each bulk slot's worth of bulk jobs waiting (at most 20 s). Each return costs a fetch
 * of its data from Redis (5 MB for 100,000 records, not parsed: see bulkJobs below), so twenty
 * waiting jobs returning every 1–4 s kept the process busy with tens of MB a second of garbage;
 * spread out, one of them still comes back about a second after a slot frees.
 */
function bulkRetryDelayMs(waiting: number, slots: number): number {
  const spread = Math.min(20_000, 2_000 * Math.max(1, waiting / slots));
  return 1_000 + Math.random() * spread;
}
/** Bulk jobs whose size this process remembers (see bulkJobs); far more than ever wait at once. */
const REMEMBERED_BULK_JOBS = 10_000;

/** The records a job carries as sent (its `enrollments` or `links`), before validation. */
export function recordCount(data: unknown): number {
  if (data === null || typeof data !== 'object') return 0;
  const { enrollments, links } = data as { enrollments?: unknown; links?: unknown };
  return Math.max(Array.isArray(enrollments) ? enrollments.length : 0, Array.isArray(links) ? links.length : 0);
}

function retryDelayMs(run: number): number {
  const base = Math.min(30_000, 250 * 2 ** Math.min(run, 7));
  return Math.round(base / 2 + Math.random() * base);
}

export interface WorkerSet {
  workers: Worker[];
  /** Stops taking jobs and waits for active ones, handing them back if they outlast `timeoutMs`. */
  close(timeoutMs: number): Promise<void>;
  isRunning(): boolean;
}

export function startWorkers(
  services: JobDeps,
  connect: (name: string) => RedisClient,
  handlers: HandlerRegistry,
): WorkerSet {
  const { config, log, metrics } = services;
  let handingBack = false;
  /** Jobs of this process whose lock expired while they ran: their runs are abandoned. */
  const lostLocks = new Set<string>();
  const selfRetries = selfRetryCounter(connect('self-retries'), config.QUEUE_PREFIX);
  let bulkRunning = 0;
  /**
   * Whether a job is bulk, by its identity (id and creation time): counted once per process from
   * its data, then known without reading its data again, which a deferred bulk job would
   * otherwise have parsed at every return (src/queue/readable-job.ts, LAZY_DATA_CHARS). Jobs of
   * short data are small however they are counted, and are not remembered.
   */
  const bulkJobs = new Map<string, boolean>();
  const isBulk = (job: Job): boolean => {
    if (lazyDataChars(job) === 0) return recordCount(job.data) > BULK_JOB_RECORDS;
    const identity = `${job.id}@${job.timestamp}`;
    let bulk = bulkJobs.get(identity);
    if (bulk === undefined) {
      // Counted from the JSON text: parsing 100,000 records only to defer the job cost tens of
      // MiB and tens of ms for each of the many bulk jobs taken at once when they were queued.
      // The scan stops past the bulk threshold: the first thousand records decide.
      bulk = recordsOfJob(job, recordCount, BULK_JOB_RECORDS) > BULK_JOB_RECORDS;
      if (bulkJobs.size >= REMEMBERED_BULK_JOBS) forget(bulkJobs.keys().next().value!);
      bulkJobs.set(identity, bulk);
      if (bulk) bulkKnown++;
    }
    return bulk;
  };
  /** Bulk jobs in bulkJobs: those running here and those waiting that this process has seen. */
  let bulkKnown = 0;
  const forget = (identity: string) => {
    if (bulkJobs.get(identity)) bulkKnown--;
    bulkJobs.delete(identity);
  };
  const forgetBulk = (job: Job) => forget(`${job.id}@${job.timestamp}`);
  const workers = (Object.keys(QUEUES) as QueueName[]).map((queue) => {
    const rejected = (reason: string) => new UnrecoverableError(capFailedReason(reason));
    const worker = new ReadableWorker(
      queue,
      async (job: Job, token?: string, signal?: AbortSignal) => {
        if (!(QUEUES[queue] as readonly string[]).includes(job.name)) {
          throw rejected(`unknown job name ${job.name} on queue ${queue}`);
        }
        // Before anything reads the data: a bulk job seen before is deferred without parsing it.
        // Unreadable data is bulk only when its text starts with a long records array (the count
        // stops there); either way it fails in runParsed, at the first read of its data.
        const bulk = isBulk(job);
        if (bulk && bulkRunning >= config.BULK_CONCURRENCY) {
          metrics.jobs.inc({ queue, name: metricJobName(job.name), outcome: 'deferred' });
          const waiting = Math.max(1, bulkKnown - bulkRunning);
          await comeBackLater(job, Date.now() + bulkRetryDelayMs(waiting, config.BULK_CONCURRENCY), token);
          throw new DelayedError();
        }
        if (bulk) bulkRunning++;
        try {
          return await runParsed(job, token, signal);
        } finally {
          if (bulk) bulkRunning--;
        }
      },
      {
        connection: connect(`worker-${queue}`),
        // Recorded on each job as `processedBy`: which process ran it, for operators and the fault suite.
        name: `${os.hostname()}:${process.pid}`,
        prefix: config.QUEUE_PREFIX,
        // Only `enrollments` carries bulk jobs; their slots come on top of the small jobs' ones. The
        // account events have slots of their own (ACCOUNTS_CONCURRENCY, src/config.ts).
        concurrency:
          queue === 'accounts'
            ? config.ACCOUNTS_CONCURRENCY
            : config.WORKER_CONCURRENCY + (queue === 'enrollments' ? config.BULK_CONCURRENCY : 0),
        removeOnComplete: KEEP_COMPLETED,
        removeOnFail: KEEP_FAILED,
        lockDuration: JOB_LOCK_MS,
        lockRenewTime: JOB_LOCK_RENEW_MS,
        stalledInterval: STALLED_CHECK_MS,
        maxStalledCount: MAX_STALLED_COUNT,
      },
    );
    worker.on('active', (job) => metrics.jobStarted(queue, metricJobName(job.name), job));
    worker.on('stalled', () => metrics.stalls.inc({ queue }));

    async function runParsed(job: Job, token?: string, signal?: AbortSignal) {
      const handler = handlers[job.name as keyof HandlerRegistry];
      if (job.data instanceof UnreadableJobData) throw rejected(`invalid payload: (root): ${job.data.problem}`);
      // In slices: a bulk job's 100,000 records validated in one step would hold the event loop,
      // and every other job of the process with it (src/contract/sliced-parse.ts).
      const parsed = await safeParseInSlices(handler.schema, job.data);
      if (!parsed.success) throw rejected(`invalid payload: ${describeIssues(parsed.issues)}`);
      // The records as sent are not needed past this point, and for a bulk job they are tens of
      // MiB of objects held until the job ends: let them go (Redis keeps the data as sent).
      if (lazyDataChars(job) > 0) job.data = null;
      const ctx: JobContext = {
        ...services,
        log: log.child({ queue, job: job.name, jobId: job.id }),
        jobId: String(job.id),
        queue,
        key: jobKey(queue, job),
        progress: (done, total) => job.updateProgress({ done, total }),
        signal: signal ?? new AbortController().signal,
      };
      try {
        const result = await handler.run(parsed.data, ctx);
        lostLocks.delete(String(job.id));
        return result;
      } catch (raw) {
        const err = coerceError(raw);
        if (lostLocks.delete(String(job.id))) {
          // Another run owns the job now (its lock expired under this one): leave it be.
          throw new DelayedError();
        }
        if (err instanceof JobRejectedError) throw rejected(err.message);
        if (handingBack && ctx.signal.aborted) {
          // Shutting down: back to the queue at once, for another worker, without using an attempt.
          await comeBackLater(job, Date.now(), token);
          throw new DelayedError();
        }
        if (err instanceof LockBusyError) {
          metrics.lockWaits.inc();
          metrics.jobs.inc({ queue, name: metricJobName(job.name), outcome: 'delayed' });
          await comeBackLater(job, Date.now() + 20 + Math.random() * 150, token);
          throw new DelayedError();
        }
        const retryable = asRetryable(err);
        // The retry count lives in Redis, on a Cluster maybe on a node that is itself away: a
        // count that cannot be read must not turn a transient fault into a failed job.
        if (retryable && (await selfRetries.allow(queue, job, retryable).catch(() => true))) {
          const delay = retryDelayMs(await selfRetries.count(queue, job).catch(() => 1));
          ctx.log.warn({ err: err.message, code: retryable.code, delay }, 'transient fault; retrying');
          metrics.jobs.inc({ queue, name: metricJobName(job.name), outcome: 'retried' });
          await comeBackLater(job, Date.now() + delay, token);
          throw new DelayedError();
        }
        err.message = capFailedReason(err.message);
        throw err;
      }
    }
    worker.on('completed', (job) => {
      forgetBulk(job);
      const name = metricJobName(job.name);
      metrics.jobs.inc({ queue, name, outcome: 'completed' });
      if (job.processedOn) metrics.jobDuration.observe({ queue, name }, (Date.now() - job.processedOn) / 1000);
    });
    worker.on('failed', (job, err) => {
      if (!job) return;
      forgetBulk(job);
      const name = metricJobName(job.name);
      metrics.jobs.inc({ queue, name, outcome: 'failed' });
      if (job.processedOn) metrics.jobDuration.observe({ queue, name }, (Date.now() - job.processedOn) / 1000);
      // The reason is capped (it may still be long), and logged only in part: a log line stays small.
      log.warn({ queue, job: name, jobId: job.id, reason: err.message.slice(0, 1_000) }, 'job failed');
    });
    // A lock that could not be renewed belongs to nobody: the stall check hands the job to another
    // run. This run stops at its next chunk instead of doing the same work beside it.
    worker.on('lockRenewalFailed', (ids) => {
      for (const id of ids) {
        if (lostLocks.has(id)) continue;
        lostLocks.add(id);
        worker.cancelJob(id, 'job lock lost');
        log.info({ queue, jobId: id }, 'a job lock expired under this run; stopping it, another run finishes the job');
      }
    });
    worker.on('error', (err) => {
      // Redis away: the outage watch (app.ts) says so once, not once per retry of each connection.
      if (isRedisConnectionError(err) || isLockRenewalFailure(err)) return;
      if (isLostJobLock(err))
        log.info({ queue, reason: err.message }, 'a job lock expired; another run finishes the job');
      else log.error({ queue, err: err.message }, 'worker error');
    });
    return worker;
  });

  return {
    workers,
    isRunning: () => workers.every((w) => w.isRunning()),
    async close(timeoutMs) {
      const graceful = Promise.all(workers.map((w) => w.close()));
      const after = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());
      if ((await Promise.race([graceful, after(timeoutMs)])) !== 'timeout') return;
      // Long jobs stop between chunks when their signal aborts; what they applied stays applied
      // (the chunk ledger), and the next worker carries on from there.
      log.warn('active jobs did not finish in time; handing them back to the queue');
      handingBack = true;
      for (const w of workers) w.cancelAllJobs('shutting down');
      if ((await Promise.race([graceful, after(2_000)])) === 'timeout') {
        await Promise.all(workers.map((w) => w.close(true)));
      }
    },
  };
}
