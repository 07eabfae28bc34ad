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

/**
 * Job data of at least this many characters of JSON is read only when something asks for it. A
 * worker takes a bulk job it cannot run yet (every bulk slot is busy: src/queue/workers.ts) only to
 * put it back for later; parsing its 100,000 records (5 MB of JSON, about 40 MB of objects) each
 * time cost the event loop tens of milliseconds and the process hundreds of MiB when many waited.
 */
export const LAZY_DATA_CHARS = 64 * 1024;

/** The length of the JSON text a job's data was read from, for jobs whose data is read lazily. */
const dataChars = new WeakMap<Job, number>();

/** Characters of JSON text of a job's data as read from Redis, or 0 when it was short enough to parse at once. */
export function lazyDataChars(job: Job): number {
  return dataChars.get(job) ?? 0;
}

function parseData(text: string): unknown {
  try {
    return JSON.parse(text || '{}');
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    return new UnreadableJobData('job data is not JSON');
  }
}

/** A BullMQ job whose unreadable data becomes an UnreadableJobData instead of an exception. */
export class ReadableJob extends Job {
  static override fromJSON<T = unknown, R = unknown, N extends string = string>(
    queue: Parameters<typeof Job.fromJSON>[0],
    json: JobJson,
    jobId?: string,
  ): Job<T, R, N> {
    const text = json.data ?? '';
    const job = Job.fromJSON<T, R, N>(queue, { ...json, data: '{}' }, jobId);
    if (text.length < LAZY_DATA_CHARS) {
      job.data = parseData(text) as T;
      return job;
    }
    // Parsed at the first read of `data`, once; a write replaces it.
    let unread: string | undefined = text;
    let value: unknown;
    Object.defineProperty(job, 'data', {
      configurable: true,
      enumerable: true,
      get() {
        if (unread !== undefined) {
          value = parseData(unread);
          unread = undefined;
        }
        return value;
      },
      set(next: unknown) {
        unread = undefined;
        value = next;
      },
    });
    dataChars.set(job, text.length);
    return job;
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
