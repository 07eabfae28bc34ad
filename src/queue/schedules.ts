import type { Queue } from 'bullmq';

export const EXPIRY_SCHEDULER_ID = 'expire-waiting-enrollments-daily';

/**
 * The daily expiry of waiting enrollments. A job scheduler is keyed by its id, so however many
 * processes start, the schedule exists once.
 */
export async function scheduleExpiry(queue: Queue): Promise<void> {
  await queue.upsertJobScheduler(
    EXPIRY_SCHEDULER_ID,
    { pattern: '0 3 * * *', tz: 'UTC' },
    { name: 'expire-waiting-enrollments', data: {}, opts: { removeOnComplete: 30, removeOnFail: 100 } },
  );
}
