import type { z } from 'zod';
import type { Config } from '../config.js';
import type { JobName } from '../contract/jobs.js';
import type { Database } from '../db/client.js';
import type { JobStamp } from '../db/history.js';
import type { LearnerCourseLocks } from '../lock/learner-course-locks.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

/** What the job handlers use; the process wiring (src/app.ts) builds it once. */
export interface JobDeps {
  config: Config;
  database: Database;
  locks: LearnerCourseLocks;
  metrics: Metrics;
  log: Logger;
}

/** One run of one job. */
export interface JobContext extends JobDeps {
  /** The BullMQ job id, recorded in history rows. */
  jobId: string;
  /** The job's queue, recorded beside its id: ids of the two queues collide (docs/contract.md "HTTP", history). */
  queue: string;
  /**
   * Identifies this job across runs (and, for a producer-chosen jobId, across re-submissions), so
   * that its effects apply once and every run returns the first result.
   */
  key: string;
  progress(done: number, total: number): Promise<void>;
  /** Aborted when the job is cancelled or the worker shuts down. */
  signal: AbortSignal;
}

export interface JobHandler<P, R> {
  schema: z.ZodType<P>;
  run(payload: P, ctx: JobContext): Promise<R>;
}

/** Every job name has its handler: a name without one fails the type check. */
export type HandlerRegistry = Record<JobName, JobHandler<any, unknown>>;

/**
 * Who made a change: the job and its queue, and the producer's `requested_by` when it sent one; and whether the
 * course-access changes it makes write their outbound events (EVENT_BUS, docs/contract.md).
 */
export function stampOf(ctx: JobContext, requestedBy?: string | null): JobStamp {
  return {
    jobId: ctx.jobId,
    queue: ctx.queue,
    requestedBy: requestedBy ?? null,
    recordEvents: ctx.config.EVENT_BUS === 'on',
  };
}
