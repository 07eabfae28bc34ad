import {
  type WriteProgramCourseEnrollmentsPayload,
  writeProgramCourseEnrollmentsPayload,
} from '../contract/payloads.js';
import { lowerKeys } from '../db/learners.js';
import { JobRejectedError } from '../domain/errors.js';
import { resolveCourseKey } from '../domain/program.js';
import type { WriteResult } from '../domain/write-results.js';
import { requireProgram } from '../use-cases/programs.js';
import { courseEnrollmentsWrite } from '../use-cases/write-course-enrollments.js';
import { runChunkedWrite } from './chunked.js';
import { type JobHandler, stampOf } from './context.js';
import { earlierResult } from './ledger.js';

export const writeProgramCourseEnrollmentsJob: JobHandler<WriteProgramCourseEnrollmentsPayload, WriteResult> = {
  schema: writeProgramCourseEnrollmentsPayload,
  async run(payload, ctx) {
    const { sql } = ctx.database;
    const earlier = await earlierResult<WriteResult>(ctx, payload.enrollments.length);
    if (earlier) return earlier;
    const program = await requireProgram(sql, payload.program_uuid);
    const courseKey = resolveCourseKey(program, payload.course_key);
    if (courseKey === null)
      throw new JobRejectedError(`course ${payload.course_key} is not in program ${program.programUuid}`);
    const lowers = await lowerKeys(
      sql,
      payload.enrollments.map((e) => e.student_key),
    );
    const work = courseEnrollmentsWrite(
      {
        program,
        courseKey,
        records: payload.enrollments.map((e, index) => ({
          index,
          sent: e.student_key,
          lower: lowers[index]!,
          status: e.status,
          courseStaff: e.course_staff ?? null,
        })),
        action: payload.action,
        stamp: stampOf(ctx, payload.requested_by),
      },
      ctx.log,
    );
    return runChunkedWrite(ctx, 'write-program-course-enrollments', work);
  },
};
