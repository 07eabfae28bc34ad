import { randomBytes } from 'node:crypto';
import { Job, type JobsOptions, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, inject } from 'vitest';
import { type Service, startService } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { QueueName } from '../../src/queue/queues.js';

export const API_TOKEN = 'test-token';
/** Required with DATABASE_URL; the tests' services share this one. */
export const TEST_RETIREMENT_SALT = 'test-retirement-salt-0123456789';
export const ADMIN = { user: 'admin', password: 'admin-secret' };

/** A database of its own, cloned from the migrated template. */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `pe_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(inject('adminDatabaseUrl'), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name} template ${inject('templateDatabase')}`);
  const url = new URL(inject('adminDatabaseUrl'));
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end({ timeout: 5 });
    },
  };
}

export interface FinishedJob<R = unknown> {
  job: Job;
  state: 'completed' | 'failed';
  result: R;
  failedReason: string | undefined;
}

export interface TestService {
  service: Service;
  url: string;
  prefix: string;
  databaseUrl: string;
  /** postgres.js on the test's own database, for assertions. */
  sql: Sql;
  /** Plain BullMQ producers, as the Registrar and the LMS use them. */
  queues: Record<QueueName, Queue>;
  add(queue: QueueName, name: string, data: unknown, opts?: JobsOptions): Promise<Job>;
  /** Adds a job and waits for it to complete or fail. */
  run<R = any>(queue: QueueName, name: string, data: unknown, opts?: JobsOptions): Promise<FinishedJob<R>>;
  wait<R = any>(job: Job, timeoutMs?: number): Promise<FinishedJob<R>>;
  /** GET (or other method) on the service with the API token. */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** Starts another process-like service on the same database and queues. */
  startPeer(env?: Record<string, string>): Promise<Service>;
  stop(): Promise<void>;
}

/**
 * The environment of a service on the test's Redis, on `databaseUrl`, under the queue prefix
 * `prefix`, listening on a free loopback port and quiet unless TEST_LOG_LEVEL says otherwise.
 */
export function serviceEnv(databaseUrl: string, prefix: string): Record<string, string> {
  return {
    REDIS_URL: inject('redisUrl'),
    DATABASE_URL: databaseUrl,
    QUEUE_PREFIX: prefix,
    // The event streams of the test's own database are named after its prefix too.
    EVENT_BUS_TOPIC_PREFIX: prefix,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    RETIREMENT_SALT: TEST_RETIREMENT_SALT,
  };
}

/** Producers on the two queues under `prefix`, sharing one connection. */
export function producerQueues(connection: Redis, prefix: string): Record<QueueName, Queue> {
  return {
    enrollments: new Queue('enrollments', { connection, prefix }),
    accounts: new Queue('accounts', { connection, prefix }),
  };
}

/** Deletes every Redis key under `prefix`: what the queues of a test's own prefix left behind. */
export async function deleteKeysUnder(connection: Redis, prefix: string): Promise<void> {
  // `<prefix>:…` are the queues' and locks' keys, `<prefix>-…` the event streams.
  for (const pattern of [`${prefix}:*`, `${prefix}-*`]) {
    let cursor = '0';
    do {
      const [next, keys] = await connection.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      if (keys.length) await connection.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
}

/** Waits until `probe` returns a value other than undefined. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
  everyMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits for a job added through `queue` to complete or fail. */
export async function waitJob<R = any>(queue: Queue, job: Job, timeoutMs = 120_000): Promise<FinishedJob<R>> {
  return waitFor(
    async () => {
      const state = await job.getState();
      // A job BullMQ no longer holds will never finish here: say so now rather than at the deadline
      // (large completed jobs leave Redis soon after they finish, src/queue/large-results.ts).
      if (state === 'unknown') throw new Error(`job ${job.name} ${job.id} is no longer in its queue`);
      if (state !== 'completed' && state !== 'failed') return undefined;
      const fresh = (await Job.fromId(queue, job.id!))!;
      return { job: fresh, state, result: fresh.returnvalue as R, failedReason: fresh.failedReason };
    },
    timeoutMs,
    `job ${job.name} ${job.id}`,
    15,
  );
}

export async function startTestService(env: Record<string, string> = {}): Promise<TestService> {
  const database = await createTestDatabase();
  const prefix = `t${randomBytes(5).toString('hex')}`;
  const makeConfig = (extra: Record<string, string>) =>
    loadConfig({
      ...serviceEnv(database.url, prefix),
      API_TOKENS: API_TOKEN,
      ADMIN_USER: ADMIN.user,
      ADMIN_PASSWORD: ADMIN.password,
      WORKER_CONCURRENCY: '8',
      ...env,
      ...extra,
    });
  const service = await startService(makeConfig({}));
  const peers: Service[] = [];
  const producer = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  const queues = producerQueues(producer, prefix);
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });

  const wait = <R>(job: Job, timeoutMs?: number) => waitJob<R>(queues[job.queueName as QueueName], job, timeoutMs);

  const t: TestService = {
    service,
    url: service.url,
    prefix,
    databaseUrl: database.url,
    sql,
    queues,
    add: (queue, name, data, opts) => queues[queue].add(name, data, opts),
    wait,
    async run(queue, name, data, opts) {
      return wait(await queues[queue].add(name, data, opts));
    },
    api: (path, init = {}) =>
      fetch(`${service.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${API_TOKEN}`, ...(init.headers ?? {}) },
      }),
    async startPeer(extra = {}) {
      const peer = await startService(makeConfig(extra));
      peers.push(peer);
      return peer;
    },
    async stop() {
      for (const p of peers) await p.stop();
      await service.stop();
      await Promise.all(Object.values(queues).map((q) => q.close()));
      await deleteKeysUnder(producer, prefix);
      await producer.quit();
      await sql.end({ timeout: 5 });
      await database.drop();
    },
  };
  return t;
}

/**
 * The test service of the enclosing file or describe block: started before its tests (with `env`
 * on top of the defaults) and stopped after them. The object is filled in by that beforeAll hook,
 * so it may be used in later hooks and in tests, not while the tests are being declared.
 */
export function useTestService(env: Record<string, string> = {}): TestService {
  const t = {} as TestService;
  let started: TestService | undefined;
  beforeAll(async () => {
    started = await startTestService(env);
    Object.assign(t, started);
  });
  afterAll(async () => {
    await started?.stop();
  });
  return t;
}
