import { type DefaultJobOptions, type KeepJobs, Queue } from 'bullmq';
import type { RedisClient } from '../infra/redis.js';

export { QUEUE_NAMES, QUEUES, type QueueName } from '../contract/jobs.js';

import type { QueueName } from '../contract/jobs.js';

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
    enrollments: new Queue('enrollments', { connection, prefix, defaultJobOptions: DEFAULT_JOB_OPTIONS }),
    accounts: new Queue('accounts', { connection, prefix, defaultJobOptions: DEFAULT_JOB_OPTIONS }),
  };
}
