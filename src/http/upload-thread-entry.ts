/**
 * The worker thread of upload-thread.ts: decodes the CSV, builds and validates the job payload
 * (upload-payloads.ts, the same rules as everywhere else) and, when it is valid, adds the job.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connectRedis, untilReady } from '../infra/redis.js';
import { DEFAULT_JOB_OPTIONS } from '../queue/queues.js';
import { ReadableQueue } from '../queue/readable-job.js';
import { UploadCsvError } from '../uploads/read-csv.js';
import { courseUploadPayload, programUploadPayload, UploadTooLargeError } from '../uploads/upload-payloads.js';
import type { ParsedUpload, UploadJobTarget, UploadKind } from './upload-thread.js';

const { kind, programUuid, bytes, target } = workerData as {
  kind: UploadKind;
  programUuid: string;
  bytes: Uint8Array;
  target: UploadJobTarget;
};

function parse():
  | ParsedUpload
  | { ok: true; payload: ReturnType<typeof programUploadPayload | typeof courseUploadPayload> } {
  let text: string;
  try {
    // Not UTF-8 would otherwise turn into U+FFFD in keys.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { ok: false, refusal: 'invalid', message: 'CSV is not valid UTF-8' };
  }
  try {
    const payload =
      kind === 'program' ? programUploadPayload(programUuid, text) : courseUploadPayload(programUuid, text);
    return { ok: true, payload };
  } catch (err) {
    if (err instanceof UploadCsvError) return { ok: false, refusal: 'invalid', message: err.message };
    if (err instanceof UploadTooLargeError) return { ok: false, refusal: 'too-large', message: err.message };
    throw err;
  }
}

async function addJob(): Promise<ParsedUpload> {
  const parsed = parse();
  if (!parsed.ok || !('payload' in parsed)) return parsed;
  const connection = connectRedis(target.redis, { name: 'upload' });
  try {
    await untilReady(connection);
    const queue = new ReadableQueue('enrollments', {
      connection,
      prefix: target.prefix,
      defaultJobOptions: DEFAULT_JOB_OPTIONS,
    });
    await queue.add(target.name, { ...parsed.payload, requested_by: target.requestedBy }, { jobId: target.jobId });
    await queue.close();
    return { ok: true, records: parsed.payload.enrollments.length };
  } finally {
    connection.disconnect();
  }
}

parentPort!.postMessage(await addJob());
