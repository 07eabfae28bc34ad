import type { Logger } from 'pino';
import type { z } from 'zod';
import type { ServiceConfig } from '../config.js';
import type { Database } from '../db/client.js';
import type { LearnerCourseLocks } from '../lock/learner-course-locks.js';
import type { Metrics } from '../metrics.js';

/** What every job handler may use. Built once per process. */
export interface Services {
  config: ServiceConfig;
  database: Database;
  locks: LearnerCourseLocks;
  metrics: Metrics;
  log: Logger;
}

/** One run of one job. */
export interface JobContext extends Services {
  /** The BullMQ job id, recorded in history rows. */
  jobId: string;
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
