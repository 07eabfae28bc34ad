import { availableParallelism } from 'node:os';
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
 *
 * The threads are long-lived (UploadParserPool): starting one per upload cost a new V8 isolate,
 * the TypeScript loader under tsx and a Redis connection for every file, hundreds of milliseconds
 * of CPU each on a busy machine, and as many isolates as concurrent uploads.
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

const parsedUpload = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), records: z.number().int().min(0) }),
  z.object({ ok: z.literal(false), refusal: z.enum(['invalid', 'too-large']), message: z.string() }),
]);
export type ParsedUpload = z.infer<typeof parsedUpload>;

/** One upload handed to a thread. */
export interface UploadTask {
  id: number;
  kind: UploadKind;
  programUuid: string;
  bytes: Uint8Array;
  target: UploadJobTarget;
}

/** A thread's answer to one task: the parsed upload, or the message of what went wrong. */
const threadAnswer = z.union([
  z.object({ id: z.number(), answer: parsedUpload }),
  z.object({ id: z.number(), error: z.string() }),
]);
export type ThreadAnswer = z.infer<typeof threadAnswer>;

/**
 * The thread's entry point. Under tsx (npm start, the tests) the source is TypeScript and the
 * thread needs the loader first (`upload-thread-boot.mjs`); built with `npm run build`, the entry
 * is the compiled `upload-thread-entry.js` next to this file, run by plain Node.
 */
export function threadEntry(moduleUrl: string = import.meta.url): URL {
  return moduleUrl.endsWith('.ts')
    ? new URL('./upload-thread-boot.mjs', moduleUrl)
    : new URL('./upload-thread-entry.js', moduleUrl);
}

/** The old-space bound of a parser thread's heap, MiB. */
const THREAD_HEAP_MIB = 128;

/**
 * A thread that has parsed an upload of at least this many bytes stops at once instead of idling:
 * the heap of a 5 MiB, 100,000-row file (well over 100 MiB of the process's RSS, which an idle
 * isolate never collects) would otherwise stay beside the bulk jobs for idleMs. The next upload
 * pays a thread start, small beside the seconds such a file takes to parse.
 */
const RETIRE_AFTER_BYTES = 1024 * 1024;

interface Pending {
  task: UploadTask;
  /** The file's size (its bytes are moved to the thread, leaving the task's copy empty). */
  size: number;
  resolve(value: ParsedUpload): void;
  reject(err: Error): void;
}

interface ParserThread {
  worker: Worker;
  /** The task it runs, or null when idle. */
  running: Pending | null;
  /** Stops the thread once it has been idle for idleMs. */
  idleTimer?: NodeJS.Timeout;
}

/**
 * A few long-lived parser threads, each running one upload at a time; uploads beyond them wait
 * their turn in order. A thread that dies fails its own upload only and is replaced at the next one.
 */
export class UploadParserPool {
  private readonly threads: ParserThread[] = [];
  private readonly waiting: Pending[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    /** At most this many uploads are parsed at once; a 2-CPU machine keeps one for the event loop. */
    readonly size: number = Math.max(1, Math.min(2, availableParallelism() - 1)),
    /**
     * A thread idle this long stops. Uploads come in bursts (a Registrar's batch); between them an
     * idle thread would keep the heap of its last 100,000-record file (an idle isolate collects
     * nothing), about 100 MiB of the process's memory.
     */
    private readonly idleMs: number = 30_000,
    private readonly entry: URL = threadEntry(),
    private readonly retireAfterBytes: number = RETIRE_AFTER_BYTES,
  ) {}

  /** Threads started so far and still running (for tests: reuse means this stays at most `size`). */
  get threadIds(): number[] {
    return this.threads.map((t) => t.worker.threadId);
  }

  /** Parses the file and, when it is valid, adds its job to `target`; the thread answers with the outcome. */
  addUploadJob(kind: UploadKind, programUuid: string, content: Buffer, target: UploadJobTarget): Promise<ParsedUpload> {
    if (this.closed) return Promise.reject(new Error('the upload parser pool is closed'));
    // A copy of its own, moved to the thread rather than cloned again.
    const bytes = new Uint8Array(content);
    return new Promise((resolve, reject) => {
      this.waiting.push({
        task: { id: this.nextId++, kind, programUuid, bytes, target },
        size: bytes.byteLength,
        resolve,
        reject,
      });
      this.dispatch();
    });
  }

  /** Stops the threads; uploads not yet answered fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const pending of this.waiting.splice(0)) pending.reject(new Error('the upload parser pool is closed'));
    await Promise.all(this.threads.splice(0).map((t) => t.worker.terminate()));
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      const thread = this.threads.find((t) => t.running === null) ?? this.startThread();
      if (!thread) return;
      const pending = this.waiting.shift()!;
      clearTimeout(thread.idleTimer);
      thread.running = pending;
      thread.worker.ref();
      // A fresh copy (addUploadJob), never shared memory.
      thread.worker.postMessage(pending.task, [pending.task.bytes.buffer as ArrayBuffer]);
    }
  }

  private startThread(): ParserThread | null {
    if (this.threads.length >= this.size) return null;
    const thread: ParserThread = {
      // Its own heap bound: a thread inherits the service's (config.ts serviceHeapMiB) and would
      // let garbage grow to it beside the main heap. Parsing a 5 MiB file keeps well under this.
      worker: new Worker(this.entry, { resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MIB } }),
      running: null,
    };
    this.threads.push(thread);
    const { worker } = thread;
    worker.on('message', (message: unknown) => {
      const pending = thread.running;
      const parsed = threadAnswer.safeParse(message);
      if (!pending || !parsed.success || parsed.data.id !== pending.task.id) {
        this.retire(thread, new Error('the upload parser answered something unexpected'));
        return;
      }
      thread.running = null;
      if ('answer' in parsed.data) pending.resolve(parsed.data.answer);
      else pending.reject(new Error(`the upload parser failed: ${parsed.data.error}`));
      if (pending.size >= this.retireAfterBytes) {
        this.retire(thread, null);
        return;
      }
      // An idle thread does not keep a stopping process alive, and stops after a while.
      worker.unref();
      thread.idleTimer = setTimeout(() => {
        if (thread.running === null) this.retire(thread, null);
      }, this.idleMs).unref();
      this.dispatch();
    });
    worker.on('error', (err) => this.retire(thread, err));
    worker.on('exit', (code) => this.retire(thread, new Error(`the upload parser stopped with code ${code}`)));
    return thread;
  }

  /** Drops a thread that failed, exited or idled (`err` null); its upload, if any, fails with `err`. */
  private retire(thread: ParserThread, err: Error | null): void {
    const at = this.threads.indexOf(thread);
    if (at < 0) return;
    this.threads.splice(at, 1);
    clearTimeout(thread.idleTimer);
    const pending = thread.running;
    thread.running = null;
    pending?.reject(err ?? new Error('the upload parser stopped'));
    void thread.worker.terminate();
    if (!this.closed) this.dispatch();
  }
}
