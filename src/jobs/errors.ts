/**
 * Errors a job handler throws to steer the worker:
 *  - JobRejectedError: the job can never succeed (bad payload, unknown program); it fails at once
 *    without retries, and its message is the failed reason producers read.
 *  - LockBusyError: another job holds a learner-course lock; the job is delayed, not failed.
 * Anything else that `isTransient` recognizes is retried by the service itself.
 */
export class JobRejectedError extends Error {
  override name = 'JobRejectedError';
}

export class LockBusyError extends Error {
  override name = 'LockBusyError';
  constructor() {
    super('a learner-course lock is held by another job');
  }
}

/** A fault that retrying cures: the database or Redis away, a lost race that Postgres caught. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    // Postgres: connection exceptions, serialization failure, deadlock, unique violation (a
    // concurrent writer won a race; the retry sees its row), shutdown, too many connections.
    if (/^(08|57P|53)/.test(code) || ['40001', '40P01', '23505', '55P03'].includes(code)) return true;
    // Node and postgres.js network errors.
    if (
      [
        'ECONNREFUSED',
        'ECONNRESET',
        'ETIMEDOUT',
        'EPIPE',
        'CONNECTION_CLOSED',
        'CONNECTION_ENDED',
        'CONNECTION_DESTROYED',
        'CONNECT_TIMEOUT',
      ].includes(code)
    )
      return true;
  }
  return /Connection is closed|ECONNREFUSED|ECONNRESET|MaxRetriesPerRequest|READONLY|LOADING|CLUSTERDOWN|TRYAGAIN/.test(
    err.message,
  );
}

export function coerceError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err), { cause: err });
}
