import { Job, type JobJson, Queue, Worker } from 'bullmq';

/**
 * What a job carries when the data that a producer wrote to Redis is not JSON: BullMQ's own
 * `JSON.parse` would throw while the job is already active, leaving it there, restarting at every
 * stall check. The worker fails such a job at once as `invalid payload: (root): …`
 * (docs/contract.md, "Payload errors").
 */
export class UnreadableJobData {
  constructor(readonly problem: string) {}
  toJSON(): { unreadable: string } {
    return { unreadable: this.problem };
  }
}

/** A BullMQ job whose unreadable data becomes an UnreadableJobData instead of an exception. */
export class ReadableJob extends Job {
  static override fromJSON<T = unknown, R = unknown, N extends string = string>(
    queue: Parameters<typeof Job.fromJSON>[0],
    json: JobJson,
    jobId?: string,
  ): Job<T, R, N> {
    try {
      return Job.fromJSON<T, R, N>(queue, json, jobId);
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      const job = Job.fromJSON<T, R, N>(queue, { ...json, data: '{}' }, jobId);
      job.data = new UnreadableJobData('job data is not JSON') as T;
      return job;
    }
  }
}

/** A Queue that reads jobs as ReadableJob: the job API and Bull Board answer for any job. */
export class ReadableQueue extends Queue {
  protected override get Job(): typeof Job {
    // A subclass with the same constructor; TypeScript cannot see through Job's generic constructor.
    return ReadableJob as unknown as typeof Job;
  }
}

/** A Worker that takes jobs as ReadableJob, so that unreadable data reaches the processor. */
export class ReadableWorker extends Worker {
  protected override get Job(): typeof Job {
    // A subclass with the same constructor; TypeScript cannot see through Job's generic constructor.
    return ReadableJob as unknown as typeof Job;
  }
}
