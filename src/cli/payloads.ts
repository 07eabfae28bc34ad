import type { z } from 'zod';
import {
  linkProgramEnrollmentsPayload,
  type writeActions,
  writeProgramCourseEnrollmentsPayload,
  writeProgramEnrollmentsPayload,
} from '../contract/payloads.js';
import {
  payloadProblem,
  readUploadCsv,
  recordLimitProblem,
  type UploadCsv,
  UploadCsvError,
} from '../uploads/read-csv.js';

/**
 * The CLI's input → job payload mapping, kept pure (text in, wire payload out) so that it is
 * tested without Redis. The CSV rules are the HTTP upload's (docs/contract.md "Uploads"): headers trimmed
 * and case-folded, extra columns dropped, blank lines ignored, RFC 4180 quoting, and the same
 * messages, so a file behaves the same whichever way it is sent.
 */

/** Input the user can fix: the CLI prints the message and exits 2 without adding a job. */
export class InputError extends Error {
  override name = 'InputError';
}

export type WriteAction = (typeof writeActions)[number];

export interface ProgramEnrollmentRecord {
  student_key: string;
  status: string;
  curriculum_uuid?: string;
}

export interface CourseEnrollmentRecord {
  student_key: string;
  status: string;
  course_staff?: boolean;
}

/** The shared upload reader (docs/contract.md "Uploads"), its refusals turned into InputError. */
function readCsv(text: string, required: readonly string[]): UploadCsv {
  try {
    return readUploadCsv(text, required);
  } catch (err) {
    if (err instanceof UploadCsvError) throw new InputError(err.message);
    throw err;
  }
}

function checkSize(count: number): void {
  const problem = recordLimitProblem(count);
  if (problem) throw new InputError(problem);
}

/** `student_key,status[,curriculum_uuid]` → the `enrollments` of `write-program-enrollments`. */
export function programEnrollmentsFromCsv(text: string): { records: ProgramEnrollmentRecord[]; lines: number[] } {
  const { rows, lines } = readCsv(text, ['student_key', 'status']);
  checkSize(rows.length);
  const records = rows.map((row, i) => {
    if (!row.student_key || !row.status) throw new InputError(`CSV is missing data at line ${lines[i]}`);
    const record: ProgramEnrollmentRecord = { student_key: row.student_key, status: row.status };
    // An empty cell means "the program's default curriculum", which is what omitting it says.
    if (row.curriculum_uuid) record.curriculum_uuid = row.curriculum_uuid;
    return record;
  });
  return { records, lines };
}

/** `student_key,status[,course_staff]` → the `enrollments` of `write-program-course-enrollments`. */
export function courseEnrollmentsFromCsv(text: string): { records: CourseEnrollmentRecord[]; lines: number[] } {
  const { rows, lines } = readCsv(text, ['student_key', 'status']);
  checkSize(rows.length);
  const records = rows.map((row, i) => {
    if (!row.student_key || !row.status) throw new InputError(`CSV is missing data at line ${lines[i]}`);
    const record: CourseEnrollmentRecord = { student_key: row.student_key, status: row.status };
    const staff = row.course_staff ?? '';
    if (staff === 'true') record.course_staff = true;
    else if (staff === 'false') record.course_staff = false;
    // Empty leaves the role alone, which on the wire is an absent field.
    else if (staff !== '') throw new InputError(`CSV has an invalid course_staff value at line ${lines[i]}`);
    return record;
  });
  return { records, lines };
}

/**
 * `key:username` items → `links`, with the checks of Open edX's `link_program_enrollments`
 * management command: exactly one ':' and two non-blank parts. Keys given twice are left to the
 * service, which reports them per key in its errors map.
 */
export function linksFromArguments(items: readonly string[]): Array<{ student_key: string; username: string }> {
  return items.map((item) => {
    const parts = item.split(':');
    const [key, username] = parts.map((p) => p.trim());
    if (parts.length !== 2 || !key || !username) {
      throw new InputError(
        `incorrectly formatted argument '${item}', must be in form <external user key>:<lms username>`,
      );
    }
    return { student_key: key, username };
  });
}

/**
 * Checks a payload against the schema the worker applies, so that a mistake is reported before a
 * job exists. The payload is sent as built, not as parsed: results are keyed by what was sent.
 * `lines` turns `enrollments.<i>` paths into the CSV line the record came from.
 */
export function checkPayload(schema: z.ZodType, payload: unknown, lines?: readonly number[]): void {
  const problem = payloadProblem(schema, payload, lines);
  if (problem) throw new InputError(problem);
}

export function programEnrollmentsPayload(input: {
  programUuid: string;
  action: WriteAction;
  records: ProgramEnrollmentRecord[];
  requestedBy?: string | undefined;
  lines?: number[];
}) {
  const payload = {
    program_uuid: input.programUuid,
    action: input.action,
    enrollments: input.records,
    ...(input.requestedBy !== undefined ? { requested_by: input.requestedBy } : {}),
  };
  checkPayload(writeProgramEnrollmentsPayload, payload, input.lines);
  return payload;
}

export function courseEnrollmentsPayload(input: {
  programUuid: string;
  courseKey: string;
  action: WriteAction;
  records: CourseEnrollmentRecord[];
  requestedBy?: string | undefined;
  lines?: number[];
}) {
  const payload = {
    program_uuid: input.programUuid,
    course_key: input.courseKey,
    action: input.action,
    enrollments: input.records,
    ...(input.requestedBy !== undefined ? { requested_by: input.requestedBy } : {}),
  };
  checkPayload(writeProgramCourseEnrollmentsPayload, payload, input.lines);
  return payload;
}

export function linkPayload(programUuid: string, items: readonly string[]) {
  const payload = { program_uuid: programUuid, links: linksFromArguments(items) };
  checkPayload(linkProgramEnrollmentsPayload, payload);
  return payload;
}
