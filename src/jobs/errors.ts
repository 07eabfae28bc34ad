import { JobRejectedError, RetryableError } from '../domain/errors.js';
import { isRedisConnectionError } from '../infra/redis.js';

export { JobRejectedError, RetryableError };

/** Another job holds a learner-course lock: the job is delayed, not failed, and no attempt is used. */
export class LockBusyError extends Error {
  override name = 'LockBusyError';
  constructor() {
    super('a learner-course lock is held by another job');
  }
}

/**
 * Postgres: serialization failure, deadlock, lock not available, unique violation (a concurrent
 * writer won a race; the retry sees its row); and the classes of connection exceptions, operator
 * intervention (shutdown) and insufficient resources (too many connections).
 */
const RETRYABLE_SQLSTATES = ['40001', '40P01', '55P03', '23505'];
const RETRYABLE_SQLSTATE_CLASSES = /^(08|57P|53)/;
/** Node and postgres.js network errors. */
const RETRYABLE_NETWORK_CODES = [
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
];
/**
 * The one place that decides whether a fault is cured by running the job again: a RetryableError
 * as it is, a Postgres or network fault wrapped in one, anything else `null`.
 */
export function asRetryable(err: unknown): RetryableError | null {
  if (err instanceof RetryableError) return err;
  if (!(err instanceof Error)) return null;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (
      RETRYABLE_SQLSTATES.includes(code) ||
      RETRYABLE_SQLSTATE_CLASSES.test(code) ||
      RETRYABLE_NETWORK_CODES.includes(code)
    )
      return new RetryableError(err.message, { cause: err, code });
  }
  // Redis away, loading or (a Cluster) moving slots: docs/contract.md, transient faults.
  return isRedisConnectionError(err) ? new RetryableError(err.message, { cause: err }) : null;
}

export function coerceError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err), { cause: err });
}
