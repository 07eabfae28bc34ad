/**
 * The worker thread of upload-thread.ts, long-lived: for each upload it is handed, it decodes the
 * CSV, builds and validates the job payload (upload-payloads.ts, the same rules as everywhere else)
 * and, when it is valid, adds the job. Its Redis connection and queue are made once and reused.
 */
import { constants, setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import type { Queue } from 'bullmq';
import { connectRedis, type RedisClient, untilReady } from '../infra/redis.js';
import { DEFAULT_JOB_OPTIONS } from '../queue/queues.js';
import { ReadableQueue } from '../queue/readable-job.js';
import { UploadCsvError } from '../uploads/read-csv.js';
import { courseUploadPayload, programUploadPayload, UploadTooLargeError } from '../uploads/upload-payloads.js';
import type { ParsedUpload, ThreadAnswer, UploadJobTarget, UploadTask } from './upload-thread.js';

type Payload = ReturnType<typeof programUploadPayload | typeof courseUploadPayload>;

function parse(task: UploadTask): ParsedUpload | { ok: true; payload: Payload } {
  let text: string;
  try {
    // Not UTF-8 would otherwise turn into U+FFFD in keys.
    text = new TextDecoder('utf-8', { fatal: true }).decode(task.bytes);
  } catch {
    return { ok: false, refusal: 'invalid', message: 'CSV is not valid UTF-8' };
  }
  try {
    const payload =
      task.kind === 'program'
        ? programUploadPayload(task.programUuid, text)
        : courseUploadPayload(task.programUuid, text);
    return { ok: true, payload };
  } catch (err) {
    if (err instanceof UploadCsvError) return { ok: false, refusal: 'invalid', message: err.message };
    if (err instanceof UploadTooLargeError) return { ok: false, refusal: 'too-large', message: err.message };
    throw err;
  }
}

/** The queue of one Redis and prefix (a process has one; kept by key all the same). */
const queues = new Map<string, { connection: RedisClient; queue: Promise<Queue> }>();

async function enrollmentsQueue(target: UploadJobTarget): Promise<Queue> {
  const key = JSON.stringify([target.redis, target.prefix]);
  let entry = queues.get(key);
  if (!entry) {
    const connection = connectRedis(target.redis, { name: 'upload' });
    // Failures reach the upload that meets them (its add rejects); the process's outage watch
    // reports Redis outages once, on the main thread.
    connection.on('error', () => {});
    const queue = untilReady(connection).then(
      () =>
        new ReadableQueue('enrollments', {
          connection,
          prefix: target.prefix,
          defaultJobOptions: DEFAULT_JOB_OPTIONS,
        }),
    );
    entry = { connection, queue };
    queues.set(key, entry);
    // A connection that never came up is made again for the next upload.
    queue.catch(() => {
      queues.delete(key);
      connection.disconnect();
    });
  }
  const queue = await entry.queue;
  // After an outage the connection comes back by itself; an upload meanwhile waits for it.
  await untilReady(entry.connection);
  return queue;
}

async function addJob(task: UploadTask): Promise<ParsedUpload> {
  const parsed = parse(task);
  if (!parsed.ok || !('payload' in parsed)) return parsed;
  const { target } = task;
  const queue = await enrollmentsQueue(target);
  await queue.add(target.name, { ...parsed.payload, requested_by: target.requestedBy }, { jobId: target.jobId });
  return { ok: true, records: parsed.payload.enrollments.length };
}

// The parser yields the CPU to the event loop of the main thread: on a busy machine both compete
// for the same cores, and `/healthz` must answer within 100 ms while a file is parsed (docs/contract.md
// "Bad requests"). On Linux a priority applies to the calling thread alone.
try {
  setPriority(constants.priority.PRIORITY_LOW);
} catch {
  // Not permitted or not supported: the parse still runs off the event loop.
}

const port = parentPort!;
// One task at a time: the pool hands a thread its next upload only after this one's answer.
port.on('message', (task: UploadTask) => {
  addJob(task).then(
    (answer) => port.postMessage({ id: task.id, answer } satisfies ThreadAnswer),
    (err: unknown) =>
      port.postMessage({ id: task.id, error: err instanceof Error ? err.message : String(err) } satisfies ThreadAnswer),
  );
});
