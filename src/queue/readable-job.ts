import { Job, type JobJson, Queue, Worker } from 'bullmq';
import { isRedisConnectionError } from '../infra/redis.js';

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
/** The JSON text of a lazily read job's data, while it has not been parsed. */
const unreadText = new WeakMap<Job, string>();

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * The length of the top-level `enrollments` and `links` arrays of a job's JSON text (the larger),
 * counted in one pass over the characters without building any object: a tenth of the time and
 * none of the memory of `JSON.parse` for 100,000 records. Null when the text is not a JSON object
 * as far as the scan can tell (the parse then decides). Only the size of a job is read this way;
 * its content is always parsed and validated before it runs.
 *
 * With `atMost`, the scan stops as soon as one records array has more items than that and answers
 * that many plus one: whether a job is bulk is known after its first thousand records instead of
 * its hundred thousandth (a 5 MB scan held the event loop 70–100 ms per bulk job, and a worker
 * takes many of them in one go when they arrive together). A key sent twice is then not looked
 * at again: a job that sent a long records array is counted as bulk even if a later copy of the
 * key is short, which costs it only the bulk lane.
 */
export function countRecordsInJson(text: string, atMost = Number.POSITIVE_INFINITY): number | null {
  let depth = 0;
  let inString = false;
  let stringStart = 0;
  let lastKey = '';
  /** At depth 1: the next string is a key (after `{` or `,`), else a value. */
  let expectKey = false;
  /** The array being counted (an `enrollments` or `links` value at depth 1), and its items. */
  let counting: string | null = null;
  let items = 0;
  let sawItem = false;
  const counts: Record<string, number> = {};
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) {
        inString = false;
        if (depth === 1 && expectKey) lastKey = text.slice(stringStart, i);
      }
      continue;
    }
    if (isSpace(c)) continue;
    if (counting !== null && depth === 2 && c !== CLOSE_ARRAY && c !== COMMA) sawItem = true;
    switch (c) {
      case QUOTE:
        if (depth === 0) return null;
        inString = true;
        stringStart = i + 1;
        break;
      case OPEN_OBJECT:
      case OPEN_ARRAY:
        if (depth === 0 && c !== OPEN_OBJECT) return null;
        depth++;
        if (depth === 1) expectKey = true;
        if (depth === 2 && c === OPEN_ARRAY && (lastKey === 'enrollments' || lastKey === 'links')) {
          counting = lastKey;
          items = 0;
          sawItem = false;
        }
        break;
      case CLOSE_OBJECT:
      case CLOSE_ARRAY:
        if (depth === 2 && counting !== null) {
          // The last value of a key sent twice counts, as JSON.parse keeps it.
          counts[counting] = sawItem ? items + 1 : 0;
          counting = null;
        }
        depth--;
        if (depth < 0) return null;
        break;
      case COMMA:
        if (depth === 1) expectKey = true;
        else if (depth === 2 && counting !== null && ++items >= atMost) return items + 1;
        break;
      case COLON:
        if (depth === 1) expectKey = false;
        break;
      default:
        if (depth === 0) return null;
    }
  }
  if (depth !== 0 || inString) return null;
  return Math.max(counts.enrollments ?? 0, counts.links ?? 0);
}

/**
 * The records of a job as sent (its `enrollments` or `links`, the larger), from its JSON text when
 * its data has not been parsed yet, else from the data; `count` for data already read. With
 * `atMost`, a count above it may stop at `atMost + 1` (countRecordsInJson).
 */
export function recordsOfJob(job: Job, count: (data: unknown) => number, atMost = Number.POSITIVE_INFINITY): number {
  const text = unreadText.get(job);
  if (text !== undefined) {
    const scanned = countRecordsInJson(text, atMost);
    if (scanned !== null) return scanned;
  }
  return count(job.data);
}

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
          unreadText.delete(job);
        }
        return value;
      },
      set(next: unknown) {
        unread = undefined;
        unreadText.delete(job);
        value = next;
      },
    });
    dataChars.set(job, text.length);
    unreadText.set(job, text);
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

/**
 * A Worker that takes jobs as ReadableJob, so that unreadable data reaches the processor, and that
 * never fails a job because recording its completion met a Redis fault that passes.
 */
export class ReadableWorker extends Worker {
  protected override get Job(): typeof Job {
    // A subclass with the same constructor; TypeScript cannot see through Job's generic constructor.
    return ReadableJob as unknown as typeof Job;
  }

  /**
   * BullMQ retries recording a completion only while the connection is closed; a Cluster that is
   * electing a master answers `CLUSTERDOWN` or `MOVED` instead, and BullMQ would then fail the job
   * with that error although its work is done (docs/contract.md "Delivery, retries and
   * idempotency": transient faults never fail a job). Such a job is left active without its lock
   * renewed: the stall check hands it back once Redis answers, and the run after finds its result
   * in the job ledger.
   */
  protected override async handleCompleted(...args: Parameters<Worker['handleCompleted']>) {
    try {
      return await super.handleCompleted(...args);
    } catch (err) {
      // No next job handed over: the worker fetches one itself.
      if (err instanceof Error && isRedisConnectionError(err)) return undefined as unknown as Job;
      throw err;
    }
  }
}
