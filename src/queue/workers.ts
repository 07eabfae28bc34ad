import { DelayedError, type Job, UnrecoverableError, Worker } from 'bullmq';
import { describeIssues } from '../contract/payloads.js';
import { ledgerKeys } from '../db/job-ledger.js';
import type { RetryableError } from '../domain/errors.js';
import type { RedisClient } from '../infra/redis.js';
import type { HandlerRegistry, JobContext, JobDeps } from '../jobs/context.js';
import { asRetryable, coerceError, JobRejectedError, LockBusyError } from '../jobs/errors.js';
import { KEEP_COMPLETED, KEEP_FAILED, QUEUES, type QueueName } from './queues.js';

/**
 * Past this many retries a fault that looked transient is treated as what it is: a failure. A
 * unique violation is usually a race lost to another writer (the retry sees its row), but one
 * that keeps coming back is a real conflict, so it gets fewer.
 */
const MAX_SELF_RETRIES = 100;
const MAX_SELF_RETRIES_ON_UNIQUE_VIOLATION = 5;

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
  const selfRetries = selfRetryCounter(connect('self-retries'), config.QUEUE_PREFIX);
  const workers = (Object.keys(QUEUES) as QueueName[]).map((queue) => {
    const worker = new Worker(
      queue,
      async (job: Job, token?: string, signal?: AbortSignal) => {
        if (!(QUEUES[queue] as readonly string[]).includes(job.name)) {
          throw new UnrecoverableError(`unknown job name ${job.name} on queue ${queue}`);
        }
        const handler = handlers[job.name as keyof HandlerRegistry];
        const parsed = handler.schema.safeParse(job.data);
        if (!parsed.success) throw new UnrecoverableError(`invalid payload: ${describeIssues(parsed.error.issues)}`);
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
          return await handler.run(parsed.data, ctx);
        } catch (raw) {
          const err = coerceError(raw);
          if (err instanceof JobRejectedError) throw new UnrecoverableError(err.message);
          if (handingBack && ctx.signal.aborted) {
            // Shutting down: back to the queue at once, for another worker, without using an attempt.
            await job.moveToDelayed(Date.now(), token);
            throw new DelayedError();
          }
          if (err instanceof LockBusyError) {
            metrics.lockWaits.inc();
            metrics.jobs.inc({ queue, name: job.name, outcome: 'delayed' });
            await job.moveToDelayed(Date.now() + 20 + Math.random() * 150, token);
            throw new DelayedError();
          }
          const retryable = asRetryable(err);
          if (retryable && (await selfRetries.allow(queue, job, retryable))) {
            const delay = retryDelayMs(await selfRetries.count(queue, job));
            ctx.log.warn({ err: err.message, code: retryable.code, delay }, 'transient fault; retrying');
            metrics.jobs.inc({ queue, name: job.name, outcome: 'retried' });
            await job.moveToDelayed(Date.now() + delay, token);
            throw new DelayedError();
          }
          throw err;
        }
      },
      {
        connection: connect(`worker-${queue}`),
        prefix: config.QUEUE_PREFIX,
        concurrency: config.WORKER_CONCURRENCY,
        removeOnComplete: KEEP_COMPLETED,
        removeOnFail: KEEP_FAILED,
        maxStalledCount: 10,
      },
    );
    worker.on('active', (job) => metrics.jobStarted(queue, job));
    worker.on('stalled', () => metrics.stalls.inc({ queue }));
    worker.on('completed', (job) => {
      metrics.jobs.inc({ queue, name: job.name, outcome: 'completed' });
      if (job.processedOn)
        metrics.jobDuration.observe({ queue, name: job.name }, (Date.now() - job.processedOn) / 1000);
    });
    worker.on('failed', (job, err) => {
      if (!job) return;
      metrics.jobs.inc({ queue, name: job.name, outcome: 'failed' });
      if (job.processedOn)
        metrics.jobDuration.observe({ queue, name: job.name }, (Date.now() - job.processedOn) / 1000);
      log.warn({ queue, job: job.name, jobId: job.id, reason: err.message }, 'job failed');
    });
    worker.on('error', (err) => log.error({ queue, err: err.message }, 'worker error'));
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
