import type { Job, JobState } from 'bullmq';
import { compareCodePoints } from './order.js';
import { csvLine } from './csv.js';

/** The job states of the Registrar's job API (django-user-tasks), as CONTRACT "HTTP" lists them. */
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

/** The per-learner results of a write job (CONTRACT "Result of both write jobs"), or null for other jobs. */
export function writeResults(returnvalue: unknown): Record<string, unknown> | null {
  if (typeof returnvalue !== 'object' || returnvalue === null) return null;
  const { results } = returnvalue as { results?: unknown };
  return typeof results === 'object' && results !== null && !Array.isArray(results)
    ? (results as Record<string, unknown>)
    : null;
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

export interface JobStatus {
  job_id: string;
  name: string;
  created: string;
  state: JobStatusState;
  result: string | null;
  text: string | null;
  error: string | null;
}

/** The job status resource; `resultUrl` is where this job's result CSV is served. */
export function jobStatus(job: Job, state: JobStatusState, resultUrl: string): JobStatus {
  const succeeded = state === 'Succeeded';
  return {
    job_id: String(job.id),
    name: job.name,
    created: new Date(job.timestamp).toISOString(),
    state,
    result: succeeded && writeResults(job.returnvalue) !== null ? resultUrl : null,
    text: succeeded ? resultText(job.returnvalue) : null,
    error: state === 'Failed' ? (job.failedReason ?? '') : null,
  };
}
