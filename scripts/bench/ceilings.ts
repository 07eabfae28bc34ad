/**
 * The three ceilings the service's figures are divided by, measured on the same Redis and Postgres
 * in the same run:
 *   (a) Postgres: upsert of 1,000-row `unnest` batches into a scratch copy of program_enrollments;
 *   (b) BullMQ: a no-op worker draining a queue;
 *   (c) one event's floor: a job that takes one Redis lock, upserts one row in its own
 *       transaction and releases the lock, at the service's default concurrency.
 */
import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Sql } from 'postgres';
import { LearnerCourseLocks } from '../../src/lock/learner-course-locks.js';

/** The service writes chunks of this many records; (a) uses the same batches. */
export const PG_BATCH = 1_000;
const ADD_BULK_BATCH = 1_000;
const NOOP_CONCURRENCY = 50;

/** (a): rows/s. The scratch table copies program_enrollments' columns, defaults and indexes. */
export async function postgresCeiling(sql: Sql, rows: number): Promise<number> {
  await sql`create table bench_scratch (like program_enrollments including all)`;
  const program = randomUUID();
  const curriculum = randomUUID();
  const started = performance.now();
  for (let start = 0; start < rows; start += PG_BATCH) {
    const n = Math.min(PG_BATCH, rows - start);
    const keys = Array.from({ length: n }, (_, i) => `Raw-${start + i}`);
    await sql`
      insert into bench_scratch (program_uuid, organization_key, student_key, curriculum_uuid, status)
      select * from unnest(${keys.map(() => program)}::uuid[], ${keys.map(() => 'BenchU')}::text[], ${keys}::text[],
                           ${keys.map(() => curriculum)}::uuid[], ${keys.map(() => 'enrolled')}::text[])
      on conflict (program_uuid, student_key_lower) do update set status = excluded.status, modified_at = now()`;
  }
  const ms = performance.now() - started;
  await sql`drop table bench_scratch`;
  return rows / (ms / 1000);
}

/** Adds `count` jobs in batches, then runs `worker` until all of them completed; jobs/s of the drain. */
async function drain(
  redisUrl: string,
  prefix: string,
  queueName: string,
  count: number,
  concurrency: number,
  processor: (data: { i: number }) => Promise<void>,
): Promise<number> {
  const producer = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(queueName, { connection: producer, prefix });
  const workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  let worker: Worker | undefined;
  try {
    for (let start = 0; start < count; start += ADD_BULK_BATCH) {
      const n = Math.min(ADD_BULK_BATCH, count - start);
      await queue.addBulk(
        Array.from({ length: n }, (_, i) => ({
          name: 'job',
          data: { i: start + i },
          opts: { removeOnComplete: true },
        })),
      );
    }
    let done = 0;
    let failure: Error | undefined;
    let resolve!: () => void;
    const finished = new Promise<void>((r) => (resolve = r));
    const started = performance.now();
    worker = new Worker(queueName, (job) => processor(job.data), { connection: workerConnection, prefix, concurrency });
    worker.on('completed', () => ++done === count && resolve());
    worker.on('failed', (_job, err) => {
      failure ??= err;
      resolve();
    });
    await finished;
    if (failure) throw failure;
    const ms = performance.now() - started;
    return count / (ms / 1000);
  } finally {
    await worker?.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    await Promise.all([producer.quit(), workerConnection.quit()]);
  }
}

/** (b): no-op jobs/s at concurrency 50. */
export function queueCeiling(redisUrl: string, prefix: string, jobs: number): Promise<number> {
  return drain(redisUrl, prefix, 'bench-noop', jobs, NOOP_CONCURRENCY, async () => {});
}

/**
 * (c): jobs/s of the smallest job that does what every account event must: one learner-course
 * lock (the service's own lock class), one row upserted in a transaction of its own, the lock
 * released; at `concurrency` (the service's default) and with the service's pool size.
 */
export async function perEventCeiling(
  redisUrl: string,
  prefix: string,
  sql: Sql,
  jobs: number,
  concurrency: number,
): Promise<number> {
  await sql`create table bench_events (key text primary key, n int not null, at timestamptz not null default now())`;
  const lockConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const locks = new LearnerCourseLocks(lockConnection, prefix, { enabled: true, ttlMs: 60_000 });
  try {
    return await drain(redisUrl, prefix, 'bench-event', jobs, concurrency, async ({ i }) => {
      const lease = await locks.acquire([
        { organizationKey: 'BenchU', studentKeyLower: `event-${i}`, courseKey: 'course-v1:BenchU+C+1' },
      ]);
      if (!lease) throw new Error('lock busy');
      try {
        await sql.begin(
          (tx) =>
            tx`insert into bench_events (key, n) values (${`event-${i}`}, ${i})
               on conflict (key) do update set n = excluded.n, at = now()`,
        );
      } finally {
        await lease.release();
      }
    });
  } finally {
    await lockConnection.quit();
    await sql`drop table bench_events`;
  }
}
