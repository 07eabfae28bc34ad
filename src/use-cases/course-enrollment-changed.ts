import type { CourseEnrollmentChangedPayload } from '../contract/payloads.js';
import type { CourseEnrollmentChangedResult } from '../contract/results.js';
import type { Tx } from '../db/client.js';
import type { JobStamp } from '../db/history.js';
import { setCourseEnrollment } from './course-access.js';

/**
 * `course-enrollment-changed`: the LMS's word on a CE it made outside programs (a `verified`
 * purchase, say). It overwrites mode and is_active and never touches a PCE; the mode rules of the
 * write jobs then see it (docs/rules.md rule 6).
 */
export async function recordCourseEnrollmentChange(
  tx: Tx,
  payload: CourseEnrollmentChangedPayload,
  stamp: JobStamp,
): Promise<CourseEnrollmentChangedResult> {
  await setCourseEnrollment(
    tx,
    { userId: payload.user_id, courseKey: payload.course_key, mode: payload.mode, isActive: payload.is_active },
    stamp,
  );
  return { course_key: payload.course_key, mode: payload.mode, is_active: payload.is_active };
}
