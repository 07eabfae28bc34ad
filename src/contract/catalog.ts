import type { z } from 'zod';
import type { QueueName } from './jobs.js';
import {
  accountCreatedPayload,
  courseEnrollmentChangedPayload,
  expireWaitingEnrollmentsPayload,
  linkProgramEnrollmentsPayload,
  retireLearnerPayload,
  upsertProgramPayload,
  writeProgramCourseEnrollmentsPayload,
  writeProgramCourseEnrollmentsUploadPayload,
  writeProgramEnrollmentsPayload,
} from './payloads.js';
import {
  accountCreatedResult,
  courseEnrollmentChangedResult,
  expireWaitingEnrollmentsResult,
  linkProgramEnrollmentsResult,
  retireLearnerResult,
  upsertProgramResult,
  writeProgramCourseEnrollmentsUploadResult,
  writeResult,
} from './results.js';

interface JobSpec<Q extends QueueName, P extends z.ZodType, R extends z.ZodType> {
  queue: Q;
  payload: P;
  result: R;
  /** Added by producers (docs/contract.md "Queues"), or only by the service itself. */
  public: boolean;
}

const spec = <Q extends QueueName, P extends z.ZodType, R extends z.ZodType>(
  queue: Q,
  payload: P,
  result: R,
  isPublic = true,
): JobSpec<Q, P, R> => ({ queue, payload, result, public: isPublic });

/**
 * Every job of docs/contract.md "Queues": its queue, the payload schema the workers validate with
 * and the schema of its result. The typed client and the JSON Schemas read this one table.
 */
export const JOBS = {
  'upsert-program': spec('enrollments', upsertProgramPayload, upsertProgramResult),
  'write-program-enrollments': spec('enrollments', writeProgramEnrollmentsPayload, writeResult),
  'write-program-course-enrollments': spec('enrollments', writeProgramCourseEnrollmentsPayload, writeResult),
  'write-program-course-enrollments-upload': spec(
    'enrollments',
    writeProgramCourseEnrollmentsUploadPayload,
    writeProgramCourseEnrollmentsUploadResult,
    false,
  ),
  'link-program-enrollments': spec('enrollments', linkProgramEnrollmentsPayload, linkProgramEnrollmentsResult),
  'expire-waiting-enrollments': spec('enrollments', expireWaitingEnrollmentsPayload, expireWaitingEnrollmentsResult),
  'retire-learner': spec('enrollments', retireLearnerPayload, retireLearnerResult),
  'account-created': spec('accounts', accountCreatedPayload, accountCreatedResult),
  'course-enrollment-changed': spec('accounts', courseEnrollmentChangedPayload, courseEnrollmentChangedResult),
} as const;

export type WireJobName = keyof typeof JOBS;
/** What a producer may send for a job: the schema's input (before trimming, defaults, lower-casing). */
export type PayloadOf<N extends WireJobName> = z.input<(typeof JOBS)[N]['payload']>;
export type ResultOf<N extends WireJobName> = z.output<(typeof JOBS)[N]['result']>;
