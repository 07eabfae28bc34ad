import { randomBytes } from 'node:crypto';
import { Job, Queue, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import postgres, { type Sql } from 'postgres';
import { inject } from 'vitest';
import { startService, type Service } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { QueueName } from '../../src/queue/queues.js';

export const API_TOKEN = 'test-token';
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

export async function startTestService(env: Record<string, string> = {}): Promise<TestService> {
  const database = await createTestDatabase();
  const prefix = `t${randomBytes(5).toString('hex')}`;
  const redisUrl = inject('redisUrl');
  const makeConfig = (extra: Record<string, string>) =>
    loadConfig({
      REDIS_URL: redisUrl,
      DATABASE_URL: database.url,
      QUEUE_PREFIX: prefix,
      PORT: '0',
      HOST: '127.0.0.1',
      API_TOKENS: API_TOKEN,
      ADMIN_USER: ADMIN.user,
      ADMIN_PASSWORD: ADMIN.password,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      WORKER_CONCURRENCY: '8',
      ...env,
      ...extra,
    });
  const service = await startService(makeConfig({}));
  const peers: Service[] = [];
  const producer = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queues: Record<QueueName, Queue> = {
    enrollments: new Queue('enrollments', { connection: producer, prefix }),
    accounts: new Queue('accounts', { connection: producer, prefix }),
  };
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });

  const wait = async <R>(job: Job, timeoutMs = 120_000): Promise<FinishedJob<R>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await job.getState();
      if (state === 'completed' || state === 'failed') {
        const fresh = (await Job.fromId(queues[job.queueName as QueueName], job.id!))!;
        return { job: fresh, state, result: fresh.returnvalue as R, failedReason: fresh.failedReason };
      }
      if (Date.now() > deadline) throw new Error(`job ${job.name} ${job.id} still ${state} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 15));
    }
  };

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
      // Remove this test's keys (its prefix is its own).
      let cursor = '0';
      do {
        const [next, keys] = await producer.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        if (keys.length) await producer.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      await producer.quit();
      await sql.end({ timeout: 5 });
      await database.drop();
    },
  };
  return t;
}
