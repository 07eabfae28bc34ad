import { type CourseEnrollmentChangedPayload, courseEnrollmentChangedPayload } from '../contract/payloads.js';
import type { CourseEnrollmentChangedResult } from '../contract/results.js';
import { ledgerKeys } from '../db/job-ledger.js';
import { recordCourseEnrollmentChange } from '../use-cases/course-enrollment-changed.js';
import { type JobHandler, stampOf } from './context.js';
import { runOnce } from './ledger.js';

/** `course-enrollment-changed`, remembered by its event_id. */
export const courseEnrollmentChangedJob: JobHandler<CourseEnrollmentChangedPayload, CourseEnrollmentChangedResult> = {
  schema: courseEnrollmentChangedPayload,
  run: (payload, ctx) =>
    runOnce(ctx, {
      key: ledgerKeys.event('course-enrollment-changed', payload.event_id),
      apply: (tx) => recordCourseEnrollmentChange(tx, payload, stampOf(ctx)),
    }),
};
