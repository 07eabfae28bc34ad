import type { Job, JobState } from 'bullmq';
import { compareCodePoints } from '../domain/order.js';
import type { CourseUploadResultRow } from '../domain/write-results.js';
import { csvLine } from './csv.js';
import { formatTimestamp } from './timestamps.js';

/** The job states of the Registrar's job API (django-user-tasks), as docs/contract.md "HTTP" lists them. */
export type JobStatusState = 'Pending' | 'In Progress' | 'Retrying' | 'Succeeded' | 'Failed' | 'Canceled';

/**
 * Maps a BullMQ state to the Registrar's. A job waiting again after it has already run is
 * `Retrying`: BullMQ's own retry after a failed attempt (attemptsMade), and the service's retries
 * of transient faults, which move the job back to delayed without counting a failed attempt
 * (attemptsStarted). `null` when BullMQ no longer knows the job.
 */
export function jobStatusState(
  state: JobState | 'unknown',
  attempts: { attemptsMade: number; attemptsStarted: number },
): JobStatusState | null {
  switch (state) {
    case 'completed':
      return 'Succeeded';
    case 'failed':
      return 'Failed';
    case 'active':
      return 'In Progress';
    case 'waiting':
    case 'prioritized':
    case 'delayed':
      return attempts.attemptsMade > 0 || attempts.attemptsStarted > 0 ? 'Retrying' : 'Pending';
    case 'waiting-children':
      return 'Pending';
    default:
      return null;
  }
}

/** The per-learner results of a write job (docs/contract.md "Result of both write jobs"), or null for other jobs. */
export function writeResults(returnvalue: unknown): Record<string, unknown> | null {
  if (typeof returnvalue !== 'object' || returnvalue === null) return null;
  const { results } = returnvalue as { results?: unknown };
  return typeof results === 'object' && results !== null && !Array.isArray(results)
    ? (results as Record<string, unknown>)
    : null;
}

/**
 * The rows of a course CSV upload's result (`write-program-course-enrollments-upload`: `results` is
 * a list of `{ course_id, student_key, status, course_staff? }`), or null for other jobs.
 */
export function courseUploadResults(
  returnvalue: unknown,
): { rows: CourseUploadResultRow[]; courseStaffColumn: boolean } | null {
  if (typeof returnvalue !== 'object' || returnvalue === null) return null;
  const { results, course_staff_column } = returnvalue as { results?: unknown; course_staff_column?: unknown };
  if (!Array.isArray(results)) return null;
  return { rows: results as CourseUploadResultRow[], courseStaffColumn: course_staff_column === true };
}

/** The aggregate code of a write job as text (`"207"`), or null when the result has none. */
export function resultText(returnvalue: unknown): string | null {
  if (typeof returnvalue !== 'object' || returnvalue === null) return null;
  const { code } = returnvalue as { code?: unknown };
  return typeof code === 'number' && Number.isFinite(code) ? String(code) : null;
}

/** `student_key,status`, one line per learner sorted by key in code-point order, every line CRLF. */
export function programResultCsv(results: Record<string, unknown>): string {
  const keys = Object.keys(results).sort(compareCodePoints);
  return csvLine(['student_key', 'status']) + keys.map((key) => csvLine([key, String(results[key])])).join('');
}

/**
 * `course_id,student_key,status[,course_staff]`, sorted by course_id then key in code-point order,
 * course_id as sent and course_staff as the cell was sent, the column only when the upload had it.
 */
export function courseUploadResultCsv(rows: readonly CourseUploadResultRow[], courseStaffColumn: boolean): string {
  // Read back from Redis: made strings again rather than trusted to be.
  const fields = rows.map(
    (r) => [String(r.course_id), String(r.student_key), String(r.status), String(r.course_staff ?? '')] as const,
  );
  fields.sort((a, b) => compareCodePoints(a[0], b[0]) || compareCodePoints(a[1], b[1]));
  const line = ([courseId, key, status, staff]: (typeof fields)[number]) =>
    csvLine(courseStaffColumn ? [courseId, key, status, staff] : [courseId, key, status]);
  const header = ['course_id', 'student_key', 'status', ...(courseStaffColumn ? ['course_staff'] : [])];
  return csvLine(header) + fields.map(line).join('');
}

/** The result CSV of a succeeded job (docs/contract.md "HTTP"), or null for a job whose result has none. */
export function resultCsv(returnvalue: unknown): string | null {
  const upload = courseUploadResults(returnvalue);
  if (upload) return courseUploadResultCsv(upload.rows, upload.courseStaffColumn);
  const results = writeResults(returnvalue);
  return results ? programResultCsv(results) : null;
}

/** Whether a succeeded job's result has a result CSV, without building it. */
export function hasResultCsv(returnvalue: unknown): boolean {
  return courseUploadResults(returnvalue) !== null || writeResults(returnvalue) !== null;
}

export interface JobStatus {
  job_id: string;
  name: string;
  created: string;
  state: JobStatusState;
  result: string | null;
  text: string | null;
  error: string | null;
  /** Who asked for the job: the `requested_by` it carries (`api:<token name>` for an upload), or null. */
  requested_by: string | null;
}

/** What the job API needs of a job: BullMQ's, or the service's own record of one BullMQ forgot. */
export type JobSnapshot = Pick<Job, 'name' | 'timestamp' | 'returnvalue' | 'failedReason' | 'data'> & {
  id?: string | undefined;
};

/** The `requested_by` of a job's data when it is a string: producers may send anything. */
function requestedBy(data: unknown): string | null {
  if (typeof data !== 'object' || data === null) return null;
  const { requested_by } = data as { requested_by?: unknown };
  return typeof requested_by === 'string' ? requested_by : null;
}

/** The job status resource; `resultUrl` is where this job's result CSV is served. */
export function jobStatus(job: JobSnapshot, state: JobStatusState, resultUrl: string): JobStatus {
  const succeeded = state === 'Succeeded';
  return {
    job_id: String(job.id),
    name: job.name,
    created: formatTimestamp(new Date(job.timestamp)),
    state,
    result: succeeded && hasResultCsv(job.returnvalue) ? resultUrl : null,
    text: succeeded ? resultText(job.returnvalue) : null,
    error: state === 'Failed' ? (job.failedReason ?? '') : null,
    requested_by: requestedBy(job.data),
  };
}
