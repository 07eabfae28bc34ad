import type { z } from 'zod';
import { writeProgramCourseEnrollmentsUploadPayload, writeProgramEnrollmentsPayload } from '../contract/payloads.js';
import { payloadProblem, readUploadCsv, recordLimitProblem, UploadCsvError } from './read-csv.js';

/**
 * The HTTP uploads' CSV → job payload mapping (docs/contract.md "HTTP" and "Uploads"), pure so that it is
 * tested without a server. A file that cannot become a valid job is refused here, before any job
 * exists: UploadCsvError (answered 400) names the problem and its line; UploadTooLargeError
 * (answered 413) is a file of more records than one job takes.
 */
export class UploadTooLargeError extends Error {
  override name = 'UploadTooLargeError';
}

export type ProgramUploadPayload = z.input<typeof writeProgramEnrollmentsPayload>;
export type CourseUploadPayload = z.input<typeof writeProgramCourseEnrollmentsUploadPayload>;

const COURSE_STAFF_CELLS = new Set(['true', 'false', '']);

function checkRecordCount(count: number): void {
  const problem = recordLimitProblem(count);
  if (problem) throw new UploadTooLargeError(problem);
}

function checkPayload(schema: z.ZodType, payload: unknown, lines: readonly number[]): void {
  const problem = payloadProblem(schema, payload, lines);
  if (problem) throw new UploadCsvError(problem);
}

/** `student_key,status` → `write-program-enrollments`, applied as create_or_update (Registrar's PUT). */
export function programUploadPayload(programUuid: string, text: string): ProgramUploadPayload {
  const { rows, lines } = readUploadCsv(text, ['student_key', 'status']);
  checkRecordCount(rows.length);
  const enrollments = rows.map((row, i) => {
    if (!row.student_key || !row.status) throw new UploadCsvError(`CSV is missing data at line ${lines[i]}`);
    return { student_key: row.student_key, status: row.status };
  });
  // No curriculum_uuid: every learner gets the program's default curriculum, as Registrar does.
  const payload: ProgramUploadPayload = { program_uuid: programUuid, action: 'create_or_update', enrollments };
  checkPayload(writeProgramEnrollmentsPayload, payload, lines);
  return payload;
}

/**
 * `student_key,course_id,status[,course_staff]` → `write-program-course-enrollments-upload`: one
 * job for every course of the file. course_staff cells are kept as sent (`true`, `false` or empty),
 * so the result CSV can echo them.
 */
export function courseUploadPayload(programUuid: string, text: string): CourseUploadPayload {
  const { columns, rows, lines } = readUploadCsv(text, ['student_key', 'course_id', 'status']);
  checkRecordCount(rows.length);
  const courseStaffColumn = columns.includes('course_staff');
  const enrollments = rows.map((row, i) => {
    if (!row.student_key || !row.course_id || !row.status)
      throw new UploadCsvError(`CSV is missing data at line ${lines[i]}`);
    const record: CourseUploadPayload['enrollments'][number] = {
      course_id: row.course_id,
      student_key: row.student_key,
      status: row.status,
    };
    if (courseStaffColumn) {
      const cell = row.course_staff ?? '';
      if (!COURSE_STAFF_CELLS.has(cell))
        throw new UploadCsvError(`CSV has an invalid course_staff value at line ${lines[i]}`);
      record.course_staff = cell as 'true' | 'false' | '';
    }
    return record;
  });
  const payload: CourseUploadPayload = {
    program_uuid: programUuid,
    course_staff_column: courseStaffColumn,
    enrollments,
  };
  checkPayload(writeProgramCourseEnrollmentsUploadPayload, payload, lines);
  return payload;
}
