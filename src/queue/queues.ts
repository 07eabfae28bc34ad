import type { DefaultJobOptions, KeepJobs, Queue } from 'bullmq';
import type { RedisClient } from '../infra/redis.js';
import { ReadableQueue } from './readable-job.js';

export { QUEUE_NAMES, QUEUES, type QueueName } from '../contract/jobs.js';

import { type JobName, QUEUES, type QueueName } from '../contract/jobs.js';

const JOB_NAMES: ReadonlySet<string> = new Set(Object.values(QUEUES).flat());
/**
 * A job name as a metric label: one of the known names, else `unknown`. Producers choose job
 * names freely, and every label value is a time series kept for the life of the process.
 */
export function metricJobName(name: string): JobName | 'unknown' {
  return JOB_NAMES.has(name) ? (name as JobName) : 'unknown';
}

/** Finished jobs stay visible in Bull Board for a while; Postgres keeps the durable record. */
export const KEEP_COMPLETED: KeepJobs = { age: 24 * 3600, count: 5_000 };
export const KEEP_FAILED: KeepJobs = { age: 7 * 24 * 3600, count: 50_000 };

/** Options for the jobs this service adds itself (schedules, uploads). Producers choose their own. */
export const DEFAULT_JOB_OPTIONS: DefaultJobOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
  removeOnComplete: KEEP_COMPLETED,
  removeOnFail: KEEP_FAILED,
};

export function createQueues(connection: RedisClient, prefix: string): Record<QueueName, Queue> {
  return {
    enrollments: new ReadableQueue('enrollments', { connection, prefix, defaultJobOptions: DEFAULT_JOB_OPTIONS }),
    accounts: new ReadableQueue('accounts', { connection, prefix, defaultJobOptions: DEFAULT_JOB_OPTIONS }),
  };
}
