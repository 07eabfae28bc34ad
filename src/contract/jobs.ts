/**
 * The two queues of docs/contract.md and the job names each one carries; besides the contract's
 * names, `write-program-course-enrollments-upload` is the service's own job for a course CSV upload
 * (src/contract/payloads.ts), which producers never send.
 */
export const QUEUES = {
  enrollments: [
    'upsert-program',
    'write-program-enrollments',
    'write-program-course-enrollments',
    'write-program-course-enrollments-upload',
    'link-program-enrollments',
    'expire-waiting-enrollments',
    'retire-learner',
  ],
  accounts: ['account-created', 'course-enrollment-changed'],
} as const;

export type QueueName = keyof typeof QUEUES;
export type JobName = (typeof QUEUES)[QueueName][number];
export const QUEUE_NAMES = Object.keys(QUEUES) as QueueName[];

/** The account events, remembered by their `event_id` rather than their jobId (contract "Account events"). */
export const EVENT_JOB_NAMES = ['account-created', 'course-enrollment-changed'] as const;
export type EventJobName = (typeof EVENT_JOB_NAMES)[number];
