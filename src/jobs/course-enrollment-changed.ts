import { insertHistory } from '../db/history.js';
import { claimResult, findResult, storeResult } from '../db/job-ledger.js';
import { type CourseEnrollmentChangedPayload, courseEnrollmentChangedPayload } from '../queue/payloads.js';
import type { JobHandler } from './context.js';

export interface CourseEnrollmentChangedResult {
  course_key: string;
  mode: string;
  is_active: boolean;
}

/**
 * `course-enrollment-changed`: the LMS's word on a CE it made outside programs (a `verified`
 * purchase, say). It overwrites mode and is_active and never touches a PCE; the mode rules of the
 * write jobs then see it.
 */
export const courseEnrollmentChangedJob: JobHandler<CourseEnrollmentChangedPayload, CourseEnrollmentChangedResult> = {
  schema: courseEnrollmentChangedPayload,
  async run(payload, ctx) {
    const { sql } = ctx.database;
    const key = `course-enrollment-changed/${payload.event_id}`;
    const earlier = await findResult<CourseEnrollmentChangedResult>(sql, key);
    if (earlier) return earlier;
    return sql.begin(async (tx) => {
      const claim = await claimResult<CourseEnrollmentChangedResult>(tx, key);
      if (!claim.claimed) return claim.result;
      const [before] = await tx<{ id: number; mode: string; isActive: boolean }[]>`
        select id, mode, is_active as "isActive" from course_enrollments
        where user_id = ${payload.user_id} and course_key = ${payload.course_key} for update`;
      // The LMS's own changes are not echoed back to it (contract.md "Outbound events").
      const stamp = { jobId: ctx.jobId, requestedBy: null, recordEvents: false };
      if (!before) {
        const [row] = await tx<{ id: number }[]>`
          insert into course_enrollments (user_id, course_key, mode, is_active)
          values (${payload.user_id}, ${payload.course_key}, ${payload.mode}, ${payload.is_active})
          returning id`;
        await insertHistory(
          tx,
          [
            {
              entity: 'course_enrollment',
              entityId: row!.id,
              programEnrollmentId: null,
              action: 'created',
              changes: {
                user_id: [null, payload.user_id],
                course_key: [null, payload.course_key],
                mode: [null, payload.mode],
                is_active: [null, payload.is_active],
              },
            },
          ],
          stamp,
        );
      } else if (before.mode !== payload.mode || before.isActive !== payload.is_active) {
        await tx`
          update course_enrollments set mode = ${payload.mode}, is_active = ${payload.is_active}, modified_at = now()
          where id = ${before.id}`;
        const changes: Record<string, [unknown, unknown]> = {};
        if (before.mode !== payload.mode) changes.mode = [before.mode, payload.mode];
        if (before.isActive !== payload.is_active) changes.is_active = [before.isActive, payload.is_active];
        await insertHistory(
          tx,
          [{ entity: 'course_enrollment', entityId: before.id, programEnrollmentId: null, action: 'changed', changes }],
          stamp,
        );
      }
      const result = { course_key: payload.course_key, mode: payload.mode, is_active: payload.is_active };
      await storeResult(tx, key, result);
      return result;
    });
  },
};
