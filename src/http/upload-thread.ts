import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import type { RedisTarget } from '../infra/redis.js';

/**
 * Parses an upload's CSV into its job payload on a worker thread (docs/contract.md, "Bad
 * requests": no request keeps the process from answering `/healthz` for more than 100 ms). Reading
 * 5 MiB of CSV and validating 100,000 records takes seconds of CPU; done on the event loop, it
 * stalled every other request and the workers' lock renewals for that long.
 *
 * The thread also adds the job, on a Redis connection of its own: handing 100,000 records back,
 * or even their 8 MB of JSON, costs the event loop hundreds of milliseconds on a busy machine.
 */
export type UploadKind = 'program' | 'course';

/** Where the thread adds the upload's job: the service's Redis, queue prefix, job name and id, and who sent it. */
export interface UploadJobTarget {
  redis: RedisTarget;
  prefix: string;
  name: string;
  jobId: string;
  /** `api:<token name>` (docs/contract.md "Who may do what"). */
  requestedBy: string;
}

const threadAnswer = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), records: z.number().int().min(0) }),
  z.object({ ok: z.literal(false), refusal: z.enum(['invalid', 'too-large']), message: z.string() }),
]);
export type ParsedUpload = z.infer<typeof threadAnswer>;

const THREAD_ENTRY = new URL('./upload-thread-boot.mjs', import.meta.url);

/**
 * Runs `upload-thread-entry.ts` on a thread for this file: it parses the CSV and, when the file is
 * valid, adds the job to `target`; the thread ends with its answer.
 */
export function addUploadJobOffThread(
  kind: UploadKind,
  programUuid: string,
  content: Buffer,
  target: UploadJobTarget,
): Promise<ParsedUpload> {
  // A copy of its own, moved to the thread rather than cloned again.
  const bytes = new Uint8Array(content);
  return new Promise((resolve, reject) => {
    const thread = new Worker(THREAD_ENTRY, {
      workerData: { kind, programUuid, bytes, target },
      transferList: [bytes.buffer],
    });
    let settled = false;
    thread.once('message', (message: unknown) => {
      settled = true;
      const parsed = threadAnswer.safeParse(message);
      if (parsed.success) resolve(parsed.data);
      else reject(new Error('the upload parser answered something unexpected'));
    });
    thread.once('error', (err) => {
      settled = true;
      reject(err);
    });
    thread.once('exit', (code) => {
      if (!settled) reject(new Error(`the upload parser stopped with code ${code}`));
    });
  });
}
