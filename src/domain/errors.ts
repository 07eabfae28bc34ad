/**
 * The two ways a job's work says how it ended other than with a result:
 *  - JobRejectedError: the job can never succeed (bad payload, unknown program); it fails at once
 *    without retries, and its message is the failed reason producers read (docs/contract.md
 *    "Delivery, retries and idempotency").
 *  - RetryableError: a fault that running the job again cures (a lost race, a row that vanished
 *    under us); the worker retries it itself with backoff. The only "retry me" signal: faults of
 *    Postgres and Redis are mapped to it in one place (src/jobs/errors.ts).
 */
export class JobRejectedError extends Error {
  override name = 'JobRejectedError';
}

export class RetryableError extends Error {
  override name = 'RetryableError';
  /** The Postgres or network error code of the fault, when it came from one. */
  readonly code: string | undefined;
  constructor(message: string, options: { cause?: unknown; code?: string } = {}) {
    super(message, { cause: options.cause });
    this.code = options.code;
  }
}
