import { Job, type JobsOptions, type Queue } from 'bullmq';
import { ConfigError, loadConfig } from '../config.js';
import { connectRedis, type RedisClient, untilReady } from '../infra/redis.js';
import { createQueues, QUEUE_NAMES, type QueueName } from '../queue/queues.js';
import { InputError } from './payloads.js';

/** What the CLI reads of the environment; the service's own variables are none of its business. */
export function loadCliConfig(env: NodeJS.ProcessEnv) {
  if (!env.REDIS_URL && !env.REDIS_CLUSTER_NODES) {
    throw new InputError(
      "REDIS_URL is not set: the CLI adds jobs to the service's Redis, e.g. REDIS_URL=redis://127.0.0.1:6379 (and QUEUE_PREFIX when the service uses one)",
    );
  }
  try {
    // Only these three are passed, so that a service-only variable set badly cannot stop the CLI.
    return loadConfig({
      REDIS_URL: env.REDIS_URL,
      REDIS_CLUSTER_NODES: env.REDIS_CLUSTER_NODES,
      QUEUE_PREFIX: env.QUEUE_PREFIX,
    });
  } catch (err) {
    if (err instanceof ConfigError) throw new InputError(err.message);
    throw err;
  }
}

/** A Redis URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

export interface QueueClient {
  prefix: string;
  queues: Record<QueueName, Queue>;
  close(): Promise<void>;
}

/** Plain BullMQ producers on the service's queues, as any other producer uses them. */
export async function openQueues(env: NodeJS.ProcessEnv, connectTimeoutMs = 10_000): Promise<QueueClient> {
  const config = loadCliConfig(env);
  const where = config.REDIS_URL ? redactUrl(config.REDIS_URL) : `cluster ${config.REDIS_CLUSTER_NODES.join(',')}`;
  const connection: RedisClient = connectRedis(
    { url: config.REDIS_URL, clusterNodes: config.REDIS_CLUSTER_NODES },
    { forWorker: false, name: 'program-enrollments-cli' },
  );
  // ioredis reconnects for ever; a CLI should say at once that Redis is not there.
  connection.on('error', () => {});
  const close = async () => {
    await connection.quit().catch(() => connection.disconnect());
  };
  try {
    await Promise.race([
      untilReady(connection, connectTimeoutMs),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no answer within ${connectTimeoutMs} ms`)), connectTimeoutMs).unref(),
      ),
    ]);
  } catch (err) {
    connection.disconnect();
    throw new Error(`cannot reach Redis at ${where}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const queues = createQueues(connection, config.QUEUE_PREFIX);
  return {
    prefix: config.QUEUE_PREFIX,
    queues,
    async close() {
      await Promise.all(Object.values(queues).map((q) => q.close().catch(() => {})));
      await close();
    },
  };
}

/**
 * Adds a job with the queue's default options (retries with backoff, retention) and the
 * producer's jobId when given. An existing jobId is not an error: BullMQ keeps the first job, and
 * the CLI follows that one.
 */
export async function addJob(
  queue: Queue,
  name: string,
  data: unknown,
  jobId: string | undefined,
): Promise<{ job: Job; existed: boolean }> {
  const existed = jobId !== undefined && (await Job.fromId(queue, jobId)) !== undefined;
  const opts: JobsOptions = jobId !== undefined ? { jobId } : {};
  const job = await queue.add(name, data, opts);
  return { job, existed };
}

export type FinalState = 'completed' | 'failed';

export interface JobSnapshot {
  queue: QueueName;
  job: Job;
  state: string;
}

/** The state is read before the job, so a job seen finished is read with its result. */
export async function snapshot(queue: Queue, id: string): Promise<JobSnapshot | undefined> {
  const state = await queue.getJobState(id);
  const job = state === 'unknown' ? undefined : await Job.fromId(queue, id);
  if (!job) return undefined;
  return { queue: queue.name as QueueName, job, state };
}

/** A job id names a job per queue (BullMQ's counters are per queue), so both are searched. */
export async function findJobs(client: QueueClient, id: string, only?: QueueName): Promise<JobSnapshot[]> {
  const found: JobSnapshot[] = [];
  for (const name of only ? [only] : QUEUE_NAMES) {
    const s = await snapshot(client.queues[name], id);
    if (s) found.push(s);
  }
  return found;
}

export interface Progress {
  done: number;
  total: number;
}

/** `job.progress` as the write jobs report it (`{ done, total }`); anything else is no progress. */
export function readProgress(value: unknown): Progress | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { done, total } = value as Record<string, unknown>;
  return typeof done === 'number' && typeof total === 'number' ? { done, total } : undefined;
}

export class JobVanishedError extends Error {
  override name = 'JobVanishedError';
}

/**
 * Polls a job until it completes or fails. Polling (not QueueEvents) keeps the CLI to one plain
 * connection and cannot miss an event that fired before it subscribed. While the service retries
 * a transient fault the job sits in `delayed`, which is still "not finished".
 */
export async function waitForJob(
  queue: Queue,
  id: string,
  onProgress: (progress: Progress) => void,
  options: { everyMs?: number; signal?: AbortSignal } = {},
): Promise<{ state: FinalState; job: Job }> {
  const everyMs = options.everyMs ?? 250;
  for (;;) {
    if (options.signal?.aborted) throw options.signal.reason;
    const s = await snapshot(queue, id);
    if (!s) throw new JobVanishedError(`job ${id} was removed from queue ${queue.name} before it finished`);
    const progress = readProgress(s.job.progress);
    if (progress) onProgress(progress);
    if (s.state === 'completed' || s.state === 'failed') return { state: s.state, job: s.job };
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
