import { type ConnectionOptions, Job, type JobsOptions, Queue } from 'bullmq';
import { JOBS, type PayloadOf, type ResultOf, type WireJobName } from '../contract/catalog.js';
import type { QueueName } from '../contract/jobs.js';
import { describeIssues } from '../contract/payloads.js';

/**
 * `program-enrollments/client`: a typed producer of the jobs of docs/contract.md over plain BullMQ.
 * Payloads are checked with the schemas the workers use before anything is added, so a payload
 * error is a thrown `InvalidPayloadError` here rather than a failed job there.
 */

export type { PayloadOf, ResultOf, WireJobName } from '../contract/catalog.js';
export type { QueueName } from '../contract/jobs.js';
export type {
  AccountCreatedResult,
  CourseEnrollmentChangedResult,
  ExpiryResult,
  LinkResult,
  RetireResult,
  UpsertProgramResult,
  WriteResult,
} from '../contract/results.js';

/** The jobs a producer adds (docs/contract.md "Queues"); the upload job is the service's own. */
export type ProducerJobName = Exclude<WireJobName, 'write-program-course-enrollments-upload'>;

export interface ClientOptions {
  /** BullMQ's connection: ioredis options, or an ioredis instance the caller owns (not closed by `close()`). */
  connection: ConnectionOptions;
  /** The service's `QUEUE_PREFIX`. Default `bull`. */
  prefix?: string;
}

export interface AddOptions {
  /**
   * Idempotency key (docs/contract.md "Idempotent submission"): adding the same id again applies
   * nothing and answers the first result. Not only digits and without `:` (BullMQ's rules).
   */
  jobId?: string;
  /** Any other BullMQ job options (priority, delay, attempts, retention…). */
  jobOptions?: Omit<JobsOptions, 'jobId'>;
}

export interface WaitOptions {
  /** Give up after this long with a `ResultTimeoutError` (the job goes on). Default 60,000 ms. */
  timeoutMs?: number;
  /** How often the job's state is read. Default 250 ms. */
  everyMs?: number;
  signal?: AbortSignal;
}

export class InvalidPayloadError extends Error {
  override name = 'InvalidPayloadError';
}

/** The job failed; `reason` is its failed reason (e.g. `invalid payload: …`, `unknown program …`). */
export class JobFailedError extends Error {
  override name = 'JobFailedError';
  constructor(
    readonly jobId: string,
    readonly reason: string,
  ) {
    super(`job ${jobId} failed: ${reason}`);
  }
}

export class ResultTimeoutError extends Error {
  override name = 'ResultTimeoutError';
}

/** The job is gone from its queue (removed by someone) before it finished. */
export class JobRemovedError extends Error {
  override name = 'JobRemovedError';
}

export interface SubmittedJob<N extends ProducerJobName> {
  id: string;
  queue: QueueName;
  name: N;
  /** Whether a job with this `jobId` was already known, so this call added nothing. */
  existed: boolean;
  /** Waits for the job to complete and answers its result, parsed with the contract's schema. */
  result(options?: WaitOptions): Promise<ResultOf<N>>;
}

type Submit<N extends ProducerJobName> = (payload: PayloadOf<N>, options?: AddOptions) => Promise<SubmittedJob<N>>;

export interface ProgramEnrollmentsClient {
  upsertProgram: Submit<'upsert-program'>;
  writeProgramEnrollments: Submit<'write-program-enrollments'>;
  writeProgramCourseEnrollments: Submit<'write-program-course-enrollments'>;
  linkProgramEnrollments: Submit<'link-program-enrollments'>;
  expireWaitingEnrollments: Submit<'expire-waiting-enrollments'>;
  retireLearner: Submit<'retire-learner'>;
  accountCreated: Submit<'account-created'>;
  courseEnrollmentChanged: Submit<'course-enrollment-changed'>;
  /** Any job by name, for code that picks the job at run time. */
  add<N extends ProducerJobName>(name: N, payload: PayloadOf<N>, options?: AddOptions): Promise<SubmittedJob<N>>;
  /** Waits for a job added earlier (by this client or another producer) to finish. */
  resultOf<N extends ProducerJobName>(name: N, jobId: string, options?: WaitOptions): Promise<ResultOf<N>>;
  /** Workers currently connected to a queue (0 means nothing will run the jobs: a wrong prefix?). */
  workerCount(queue: QueueName): Promise<number>;
  /** Closes the client's queues; a process that only produces exits after it. */
  close(): Promise<void>;
}

export function createClient(options: ClientOptions): ProgramEnrollmentsClient {
  const prefix = options.prefix ?? 'bull';
  const queues: Record<QueueName, Queue> = {
    enrollments: new Queue('enrollments', { connection: options.connection, prefix }),
    accounts: new Queue('accounts', { connection: options.connection, prefix }),
  };

  async function resultOf<N extends ProducerJobName>(
    name: N,
    jobId: string,
    wait: WaitOptions = {},
  ): Promise<ResultOf<N>> {
    const queue = queues[JOBS[name].queue];
    const deadline = Date.now() + (wait.timeoutMs ?? 60_000);
    for (;;) {
      if (wait.signal?.aborted) throw wait.signal.reason;
      // The state is read before the job, so a job seen finished is read with its result.
      const state = await queue.getJobState(jobId);
      if (state === 'completed' || state === 'failed') {
        const job = await Job.fromId(queue, jobId);
        if (!job) throw new JobRemovedError(`job ${jobId} was removed from queue ${queue.name}`);
        if (state === 'failed') throw new JobFailedError(jobId, job.failedReason);
        return JOBS[name].result.parse(job.returnvalue) as ResultOf<N>;
      }
      if (state === 'unknown') throw new JobRemovedError(`no job ${jobId} in queue ${queue.name} (prefix ${prefix})`);
      if (Date.now() >= deadline) {
        throw new ResultTimeoutError(
          `job ${jobId} did not finish within ${wait.timeoutMs ?? 60_000} ms (state ${state}); it goes on`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.min(wait.everyMs ?? 250, Math.max(1, deadline - Date.now()))));
    }
  }

  async function add<N extends ProducerJobName>(
    name: N,
    payload: PayloadOf<N>,
    addOptions: AddOptions = {},
  ): Promise<SubmittedJob<N>> {
    const parsed = JOBS[name].payload.safeParse(payload);
    if (!parsed.success) throw new InvalidPayloadError(`invalid payload: ${describeIssues(parsed.error.issues)}`);
    const queue = queues[JOBS[name].queue];
    const { jobId } = addOptions;
    const existed = jobId !== undefined && (await Job.fromId(queue, jobId)) !== undefined;
    // The payload goes as the producer wrote it: the worker trims and lower-cases exactly as it
    // would for any other producer, and results are keyed by the keys as sent.
    const job = await queue.add(name, payload, { ...addOptions.jobOptions, ...(jobId !== undefined ? { jobId } : {}) });
    const id = String(job.id);
    return {
      id,
      queue: JOBS[name].queue,
      name,
      existed,
      result: (wait) => resultOf(name, id, wait),
    };
  }

  const method =
    <N extends ProducerJobName>(name: N): Submit<N> =>
    (payload, addOptions) =>
      add(name, payload, addOptions);

  return {
    upsertProgram: method('upsert-program'),
    writeProgramEnrollments: method('write-program-enrollments'),
    writeProgramCourseEnrollments: method('write-program-course-enrollments'),
    linkProgramEnrollments: method('link-program-enrollments'),
    expireWaitingEnrollments: method('expire-waiting-enrollments'),
    retireLearner: method('retire-learner'),
    accountCreated: method('account-created'),
    courseEnrollmentChanged: method('course-enrollment-changed'),
    add,
    resultOf,
    workerCount: (queue) => queues[queue].getWorkersCount(),
    async close() {
      await Promise.all(Object.values(queues).map((q) => q.close()));
    },
  };
}
