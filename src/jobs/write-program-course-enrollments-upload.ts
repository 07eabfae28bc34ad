import {
  type WriteProgramCourseEnrollmentsUploadPayload,
  writeProgramCourseEnrollmentsUploadPayload,
} from '../contract/payloads.js';
import { ledgerKeys, storeResult } from '../db/job-ledger.js';
import { lowerKeys } from '../db/learners.js';
import type { CourseRecord } from '../domain/course-enrollment-writes.js';
import { resolveCourseKey } from '../domain/program.js';
import { type CourseUploadResult, type CourseUploadResultRow, codeAndCounts } from '../domain/write-results.js';
import { requireProgram } from '../use-cases/programs.js';
import { courseEnrollmentsWrite } from '../use-cases/write-course-enrollments.js';
import { runChunkedWrite } from './chunked.js';
import { type JobContext, type JobHandler, stampOf } from './context.js';
import { earlierResult } from './ledger.js';

const JOB_NAME = 'write-program-course-enrollments-upload';

/** A course_staff cell as the course write takes it: `true` grants, `false` revokes, empty leaves alone. */
function courseStaffOf(cell: string | undefined): boolean | null {
  return cell === 'true' ? true : cell === 'false' ? false : null;
}

/**
 * The course CSV upload (`POST …/course_enrollments/upload`), as Registrar's
 * write_course_run_enrollments does it: rows grouped by course, every row of a `course_id` that names
 * no course of the program gets `course-not-found`, and each course is written as
 * `write-program-course-enrollments` would write it (create_or_update, duplicates per course).
 *
 * Rows are grouped by the course they resolve to, not by the `course_id` spelling: a learner listed
 * under a course's own key and again under its external key is in that course twice, so duplicated.
 *
 * Exactly once: each course keeps its own ledger entry (`<job key>#course:<course key>`), so a run
 * after a crash or a busy lock skips the courses and chunks already applied; the whole result is
 * stored under the job's key, so a later run or a re-submission returns it and applies nothing.
 */
export const writeProgramCourseEnrollmentsUploadJob: JobHandler<
  WriteProgramCourseEnrollmentsUploadPayload,
  CourseUploadResult
> = {
  schema: writeProgramCourseEnrollmentsUploadPayload,
  async run(payload, ctx) {
    const { sql } = ctx.database;
    const rows = payload.enrollments;
    const total = rows.length;
    const earlier = await earlierResult<CourseUploadResult>(ctx, total);
    if (earlier) return earlier;
    const program = await requireProgram(sql, payload.program_uuid);

    // Row positions by the course's own key, in order of first appearance; a Map keeps that order.
    const rowsOfCourse = new Map<string, number[]>();
    const courseKeyOf = new Map<string, string | null>();
    const resultOfRow: string[] = new Array<string>(total);
    let unresolved = 0;
    rows.forEach((row, i) => {
      let courseKey = courseKeyOf.get(row.course_id);
      if (courseKey === undefined) {
        courseKey = resolveCourseKey(program, row.course_id);
        courseKeyOf.set(row.course_id, courseKey);
      }
      if (courseKey === null) {
        resultOfRow[i] = 'course-not-found';
        unresolved += 1;
        return;
      }
      const positions = rowsOfCourse.get(courseKey);
      if (positions) positions.push(i);
      else rowsOfCourse.set(courseKey, [i]);
    });

    let done = unresolved;
    if (unresolved > 0 && done < total) await ctx.progress(done, total);
    const lowers = await lowerKeys(
      sql,
      rows.map((r) => r.student_key),
    );
    const stamp = stampOf(ctx, payload.requested_by);
    for (const [courseKey, positions] of rowsOfCourse) {
      const before = done;
      // Progress counts rows over the whole upload, not over the course being written.
      const courseCtx: JobContext = {
        ...ctx,
        log: ctx.log.child({ course: courseKey }),
        progress: (courseDone) => ctx.progress(before + courseDone, total),
      };
      const records: CourseRecord[] = positions.map((i) => ({
        index: i,
        sent: rows[i]!.student_key,
        lower: lowers[i]!,
        status: rows[i]!.status,
        courseStaff: courseStaffOf(rows[i]!.course_staff),
      }));
      const written = await runChunkedWrite(
        courseCtx,
        JOB_NAME,
        courseEnrollmentsWrite({ program, courseKey, records, action: 'create_or_update', stamp }, courseCtx.log),
        ledgerKeys.course(ctx.key, courseKey),
      );
      for (const i of positions) {
        const result = written.results[rows[i]!.student_key];
        if (result === undefined) {
          // Only possible when the catalog changed between two runs of this job, so that a course's
          // stored result covers other rows than this run gives it: those rows were never applied.
          courseCtx.log.error({ row: i }, 'row missing from the stored result of its course');
        }
        resultOfRow[i] = result ?? 'internal-error';
      }
      done += positions.length;
    }

    // One entry per course_id as sent and key spelling; the first row of a repeated pair speaks for it.
    const entries = new Map<string, CourseUploadResultRow>();
    rows.forEach((row, i) => {
      const id = `${row.course_id}\u0000${row.student_key}`;
      if (entries.has(id)) return;
      const entry: CourseUploadResultRow = {
        course_id: row.course_id,
        student_key: row.student_key,
        status: resultOfRow[i]!,
      };
      if (payload.course_staff_column) entry.course_staff = row.course_staff ?? '';
      entries.set(id, entry);
    });
    const results = [...entries.values()];
    const { code, counts } = codeAndCounts(results.map((r) => r.status));
    const summary = await sql.begin((tx) =>
      storeResult<CourseUploadResult>(tx, ctx.key, {
        code,
        results,
        counts,
        course_staff_column: payload.course_staff_column,
      }),
    );
    // The course writes counted their own results; what no course write saw is counted here.
    if (counts['course-not-found'])
      ctx.metrics.writeResults.inc({ name: JOB_NAME, result: 'course-not-found' }, counts['course-not-found']);
    await ctx.progress(total, total);
    ctx.log.info({ records: total, courses: rowsOfCourse.size, code, counts }, 'course upload applied');
    return summary;
  },
};
