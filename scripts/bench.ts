/**
 * `npm run bench [-- --learners N --events M --noop-jobs K]`
 *
 * Measures, in one run and on the same Redis and Postgres, the two raw ceilings the service is
 * built on and the service itself, so that the ratios say how much of the hardware it uses:
 *   (a) Postgres: `insert … select * from unnest(…)` into a table shaped like program_enrollments;
 *   (b) BullMQ: addBulk, and a no-op Worker at concurrency 50;
 *   (c) the service: one write-program-enrollments job of N learners, then one
 *       write-program-course-enrollments job for the same learners;
 *   (d) the service: M account-created events, each linking one waiting PE with one PCE.
 * Redis and Postgres: REDIS_URL / DATABASE_URL when set, else the local services when they answer,
 * else private ones (src/infra/locate.ts). Everything it creates (a database, a queue prefix, temp dirs) is removed at the
 * end, also on failure or Ctrl-C.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { type Service, startService } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { runMigrations } from '../src/db/migrate.js';
import { locatePostgres, locateRedis } from '../src/infra/locate.js';

/** The service writes in chunks of this many records (WRITE_CHUNK_SIZE); (a) uses the same batches. */
const PG_BATCH = 1_000;
const ADD_BULK_BATCH = 500;
const NOOP_CONCURRENCY = 50;

// ---------------------------------------------------------------------------------------------
// Options

const { values: args } = parseArgs({
  options: {
    learners: { type: 'string', default: '100000' },
    events: { type: 'string', default: '2000' },
    'noop-jobs': { type: 'string', default: '20000' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('usage: npm run bench -- [--learners N (100000)] [--events M (2000)] [--noop-jobs K (20000)]');
  process.exit(0);
}
const positive = (name: string, value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer`);
    process.exit(2);
  }
  return n;
};
const LEARNERS = positive('learners', args.learners);
const EVENTS = Math.min(positive('events', args.events), LEARNERS);
const NOOP_JOBS = positive('noop-jobs', args['noop-jobs']);
if (LEARNERS > 100_000) {
  console.error('--learners is at most 100,000: that is the most one write job takes (CONTRACT.md)');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Clean-up: every resource registers how to undo itself; it runs once, in reverse, whatever happens.

const cleanups: Array<{ what: string; run: () => Promise<void> }> = [];
let cleaning: Promise<void> | undefined;
const onCleanup = (what: string, run: () => Promise<void>) => cleanups.push({ what, run });
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) {
      await c
        .run()
        .catch((err) => console.error(`clean-up: ${c.what}: ${err instanceof Error ? err.message : String(err)}`));
    }
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Helpers

const status = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const seconds = (ms: number) => `${fmt(ms / 1000, 2)} s`;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function waitForJob(queue: Queue, id: string, timeoutMs: number): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await queue.getJobState(id);
    if (state === 'completed' || state === 'failed') {
      const job = (await Job.fromId(queue, id))!;
      if (state === 'failed') throw new Error(`${job.name} failed: ${job.failedReason}`);
      return job;
    }
    if (Date.now() > deadline) throw new Error(`job ${id} still ${state} after ${timeoutMs} ms`);
    await sleep(25);
  }
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

interface Row {
  what: string;
  size: string;
  time: string;
  rate: string;
  ratio: string;
}

// ---------------------------------------------------------------------------------------------
// The run

async function main(): Promise<void> {
  // Services
  const redisService = await locateRedis();
  onCleanup(`redis (${redisService.source})`, () => redisService.stop());
  const postgresService = await locatePostgres({
    // A throwaway cluster with Postgres's default durability, so commits cost what they cost.
    dataDir: () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'pe-bench-pg-'));
      onCleanup('embedded postgres data', async () => rmSync(dir, { recursive: true, force: true }));
      return path.join(dir, 'data');
    },
  });
  onCleanup(`postgres (${postgresService.source})`, () => postgresService.stop());
  const { url: redisUrl, source: redisSource } = redisService;
  const { url: adminUrl, source: postgresSource } = postgresService;

  // A database and a queue prefix of its own
  const suffix = randomBytes(5).toString('hex');
  const databaseName = `pe_bench_${suffix}`;
  const prefix = `bench${suffix}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  onCleanup('admin connection', () => admin.end({ timeout: 5 }));
  await admin.unsafe(`create database ${databaseName}`);
  onCleanup(
    `database ${databaseName}`,
    async () => void (await admin.unsafe(`drop database if exists ${databaseName} with (force)`)),
  );
  const dbUrl = new URL(adminUrl);
  dbUrl.pathname = `/${databaseName}`;
  const databaseUrl = dbUrl.toString();
  await runMigrations(databaseUrl);

  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  onCleanup('redis connection', async () => void (await redis.quit().catch(() => redis.disconnect())));
  onCleanup(`redis keys ${prefix}:*`, () => deleteKeys(redis, `${prefix}:*`));
  onCleanup(`event streams ${prefix}-*`, () => deleteKeys(redis, `${prefix}-*`));
  const sql = postgres(databaseUrl, { max: 4, onnotice: () => {} });
  onCleanup('bench connection', () => sql.end({ timeout: 5 }));

  const [{ server_version: pgVersion }] = await sql<[{ server_version: string }]>`show server_version`;
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? '?';
  const rows: Row[] = [];

  // (a) Postgres ceiling
  status(`(a) Postgres: unnest insert of ${fmt(LEARNERS)} rows in batches of ${fmt(PG_BATCH)}`);
  await sql`
    create table bench_scratch (
      id bigserial primary key,
      program_uuid uuid not null,
      organization_key text not null,
      student_key text not null,
      student_key_lower text generated always as (lower(student_key)) stored,
      user_id bigint,
      curriculum_uuid uuid not null,
      status text not null check (status in ('enrolled', 'pending', 'suspended', 'canceled', 'ended')),
      created_at timestamptz not null default now(),
      modified_at timestamptz not null default now())`;
  await sql`create unique index on bench_scratch (program_uuid, student_key_lower)`;
  await sql`create index on bench_scratch (organization_key, student_key_lower)`;
  await sql`create index on bench_scratch (modified_at) where user_id is null`;
  const scratchProgram = randomUUID();
  const scratchCurriculum = randomUUID();
  const pgStart = performance.now();
  for (let start = 0; start < LEARNERS; start += PG_BATCH) {
    const n = Math.min(PG_BATCH, LEARNERS - start);
    const keys = Array.from({ length: n }, (_, i) => `Raw-${start + i}`);
    await sql`
      insert into bench_scratch (program_uuid, organization_key, student_key, curriculum_uuid, status)
      select * from unnest(${keys.map(() => scratchProgram)}::uuid[], ${keys.map(() => 'BenchU')}::text[], ${keys}::text[],
                           ${keys.map(() => scratchCurriculum)}::uuid[], ${keys.map(() => 'enrolled')}::text[])`;
  }
  const pgMs = performance.now() - pgStart;
  const pgRate = LEARNERS / (pgMs / 1000);
  rows.push({
    what: `(a) Postgres ceiling: \`insert … select * from unnest\`, ${fmt(PG_BATCH)} rows a statement`,
    size: `${fmt(LEARNERS)} rows`,
    time: seconds(pgMs),
    rate: `${fmt(pgRate)} rows/s`,
    ratio: '1 (a)',
  });
  await sql`drop table bench_scratch`;

  // (b) BullMQ ceiling
  status(`(b) BullMQ: addBulk of ${fmt(NOOP_JOBS)} jobs, then a no-op worker at concurrency ${NOOP_CONCURRENCY}`);
  const noop = new Queue('bench-noop', { connection: redis, prefix });
  onCleanup('no-op queue', () => noop.close());
  const addStart = performance.now();
  for (let start = 0; start < NOOP_JOBS; start += ADD_BULK_BATCH) {
    const n = Math.min(ADD_BULK_BATCH, NOOP_JOBS - start);
    await noop.addBulk(
      Array.from({ length: n }, (_, i) => ({ name: 'noop', data: { i: start + i }, opts: { removeOnComplete: true } })),
    );
  }
  const addMs = performance.now() - addStart;
  let processed = 0;
  let allProcessed!: () => void;
  const drained = new Promise<void>((r) => (allProcessed = r));
  const processStart = performance.now();
  const workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  onCleanup(
    'no-op worker connection',
    async () => void (await workerConnection.quit().catch(() => workerConnection.disconnect())),
  );
  const worker = new Worker('bench-noop', async () => {}, {
    connection: workerConnection,
    prefix,
    concurrency: NOOP_CONCURRENCY,
  });
  onCleanup('no-op worker', () => worker.close());
  worker.on('completed', () => {
    if (++processed === NOOP_JOBS) allProcessed();
  });
  await drained;
  const processMs = performance.now() - processStart;
  await worker.close();
  const noopRate = NOOP_JOBS / (processMs / 1000);
  rows.push({
    what: `(b) BullMQ ceiling: \`addBulk\`, ${ADD_BULK_BATCH} a call`,
    size: `${fmt(NOOP_JOBS)} jobs`,
    time: seconds(addMs),
    rate: `${fmt(NOOP_JOBS / (addMs / 1000))} jobs/s`,
    ratio: '',
  });
  rows.push({
    what: `(b) BullMQ ceiling: no-op Worker, concurrency ${NOOP_CONCURRENCY}`,
    size: `${fmt(NOOP_JOBS)} jobs`,
    time: seconds(processMs),
    rate: `${fmt(noopRate)} jobs/s`,
    ratio: '1 (b)',
  });

  // The service, as `npm start` runs it
  const config = loadConfig({
    REDIS_URL: redisUrl,
    DATABASE_URL: databaseUrl,
    // Required with DATABASE_URL; the benchmark's database is dropped afterwards, so any will do.
    RETIREMENT_SALT: randomBytes(32).toString('hex'),
    QUEUE_PREFIX: prefix,
    // EVENT_BUS=off npm run bench measures without the outbound events; streams named after the prefix.
    EVENT_BUS: process.env.EVENT_BUS ?? 'on',
    EVENT_BUS_TOPIC_PREFIX: prefix,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
    ...(process.env.WORKER_CONCURRENCY ? { WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY } : {}),
  });
  status(`starting the service (WORKER_CONCURRENCY ${config.WORKER_CONCURRENCY})`);
  const service: Service = await startService(config);
  onCleanup('service', () => service.stop());
  const { enrollments, accounts } = service.queues;

  const programUuid = randomUUID();
  const org = 'BenchU';
  const courseKey = 'course-v1:BenchU+B101+2026';
  const upsert = await enrollments.add('upsert-program', {
    program_uuid: programUuid,
    organization_key: org,
    curricula: [{ curriculum_uuid: randomUUID(), is_active: true, course_keys: [courseKey] }],
    courses: [{ course_key: courseKey, modes: ['audit', 'masters'] }],
  });
  await waitForJob(enrollments, upsert.id!, 30_000);

  // (c) bulk writes: time from add to finish, as the Registrar sees it
  const keys = Array.from({ length: LEARNERS }, (_, i) => `Learner-${suffix}-${i}`);
  const bulkWrite = async (name: string, data: object): Promise<Job> => {
    status(`(c) ${name}: ${fmt(LEARNERS)} learners in one job`);
    const job = await enrollments.add(name, data);
    return waitForJob(enrollments, job.id!, 30 * 60_000);
  };
  const writeRow = (what: string, job: Job): Row => {
    const ms = job.finishedOn! - job.timestamp;
    const rate = LEARNERS / (ms / 1000);
    const result = job.returnvalue as { code: number; counts: Record<string, number> };
    const counts = Object.entries(result.counts)
      .map(([k, n]) => `${fmt(n)} ${k}`)
      .join(', ');
    return {
      what: `(c) ${what} (code ${result.code}: ${counts})`,
      size: `${fmt(LEARNERS)} learners`,
      time: seconds(ms),
      rate: `${fmt(rate)} learners/s`,
      ratio: `${fmt(rate / pgRate, 2)} × (a)`,
    };
  };
  const peJob = await bulkWrite('write-program-enrollments', {
    program_uuid: programUuid,
    action: 'create_or_update',
    enrollments: keys.map((student_key) => ({ student_key, status: 'enrolled' })),
  });
  rows.push(writeRow('`write-program-enrollments`, 1 job', peJob));
  const pceJob = await bulkWrite('write-program-course-enrollments', {
    program_uuid: programUuid,
    course_key: courseKey,
    action: 'create_or_update',
    enrollments: keys.map((student_key) => ({ student_key, status: 'active' })),
  });
  rows.push(writeRow('`write-program-course-enrollments`, 1 job', pceJob));

  // (d) account events: each links one of the waiting PEs above, with its one PCE
  status(`(d) account-created: ${fmt(EVENTS)} events, each linking a waiting PE with one PCE`);
  const userBase = 10_000_000;
  const events = keys.slice(0, EVENTS).map((key, i) => ({
    name: 'account-created',
    data: {
      event_id: `bench-${suffix}-${i}`,
      user_id: userBase + i,
      username: `bench-${suffix}-${i}`,
      identities: [{ organization_key: org, external_user_key: key }],
    },
  }));
  const eventIds: string[] = [];
  const eventsStart = Date.now();
  for (let start = 0; start < events.length; start += ADD_BULK_BATCH) {
    const added = await accounts.addBulk(events.slice(start, start + ADD_BULK_BATCH));
    eventIds.push(...added.map((j) => j.id!));
  }
  for (;;) {
    const counts = await accounts.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    if (Object.values(counts).every((n) => n === 0)) break;
    await sleep(20);
  }
  const drainedAt = Date.now();
  // Finished jobs are kept (up to KEEP_COMPLETED's count); read their timestamps back.
  const finished: Job[] = [];
  for (let start = 0; start < eventIds.length; start += 200) {
    const batch = await Promise.all(eventIds.slice(start, start + 200).map((id) => Job.fromId(accounts, id)));
    for (const j of batch) if (j) finished.push(j);
  }
  const failed = (await Promise.all(finished.map((j) => j.isFailed()))).filter(Boolean).length;
  if (failed)
    throw new Error(
      `${failed} account-created events failed, e.g. ${finished.find((j) => j.failedReason)?.failedReason}`,
    );
  // With more events than the service keeps, the drain time (20 ms coarser) stands in for the last finish.
  const lastFinish = finished.length === EVENTS ? Math.max(...finished.map((j) => j.finishedOn ?? 0)) : drainedAt;
  const eventsMs = lastFinish - eventsStart;
  const eventRate = EVENTS / (eventsMs / 1000);
  const linked = finished.filter((j) => (j.returnvalue as { linked?: unknown[] } | null)?.linked?.length === 1).length;
  rows.push({
    what: `(d) \`account-created\`, each linking 1 PE + 1 PCE (${fmt(linked)} linked), concurrency ${config.WORKER_CONCURRENCY}`,
    size: `${fmt(EVENTS)} events`,
    time: seconds(eventsMs),
    rate: `${fmt(eventRate)} events/s`,
    ratio: `${fmt(eventRate / noopRate, 3)} × (b)`,
  });
  const waits = finished.map((j) => j.processedOn! - j.timestamp).sort((a, b) => a - b);
  const runs = finished.map((j) => j.finishedOn! - j.processedOn!).sort((a, b) => a - b);
  const [{ pes, pces }] = await sql<[{ pes: number; pces: number }]>`
    select (select count(*) from program_enrollments where user_id is not null)::int as pes,
           (select count(*) from program_course_enrollments where course_enrollment_id is not null)::int as pces`;

  // Report
  const cpus = os.cpus();
  const lines = [
    '',
    `Machine: ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB, Node ${process.version}, ` +
      `Postgres ${pgVersion} (${postgresSource}), Redis ${redisVersion} (${redisSource}), loopback.`,
    'Figures are from one run on a shared machine: indicative, not a guarantee; compare ratios, and re-run before quoting.',
    '',
    '| what | size | time | rate | ratio |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.what} | ${r.size} | ${r.time} | ${r.rate} | ${r.ratio} |`),
    '',
    `(d) latency per event over ${fmt(finished.length)} events: queue wait (processedOn − timestamp) p50 ${fmt(percentile(waits, 50))} ms, ` +
      `p95 ${fmt(percentile(waits, 95))} ms; processing (finishedOn − processedOn) p50 ${fmt(percentile(runs, 50))} ms, p95 ${fmt(percentile(runs, 95))} ms.`,
    `Afterwards: ${fmt(pes)} realized PEs, ${fmt(pces)} PCEs with a course enrollment. Times of (c) and (d) run from the add to the last finish.`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = 1;
} finally {
  status('cleaning up');
  await cleanUp();
}
process.exit(exitCode);
