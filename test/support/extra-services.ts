/**
 * Services a test starts itself, beside its test service: on the test's database, but under a queue
 * prefix of their own, so that the test decides which process gets which job.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { type Service, startService } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { QueueName } from '../../src/queue/queues.js';
import { deleteKeysUnder, producerQueues, serviceEnv, type TestService } from './service.js';

/** A queue prefix no service watches yet. */
export function newPrefix(): string {
  return `x${randomBytes(5).toString('hex')}`;
}

export interface PrefixQueues {
  queues: Record<QueueName, Queue>;
  /** Closes the producers and deletes every key under the prefix. */
  close(): Promise<void>;
}

/** Producers on the queues under `prefix`, on a connection of their own. */
export async function queuesOn(prefix: string): Promise<PrefixQueues> {
  const connection = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  const queues = producerQueues(connection, prefix);
  const close = async () => {
    await Promise.all(Object.values(queues).map((q) => q.close()));
    await deleteKeysUnder(connection, prefix);
    await connection.quit();
  };
  return { queues, close };
}

function extraEnv(t: TestService, prefix: string, env: Record<string, string>): Record<string, string> {
  // The outbox is the database's, so its events go to the test service's streams whatever the queues.
  return {
    ...serviceEnv(t.databaseUrl, prefix),
    EVENT_BUS_TOPIC_PREFIX: t.prefix,
    WORKER_CONCURRENCY: '2',
    ...env,
  };
}

/** An in-process service (as `npm start` runs it) on the test's database, under `prefix`. */
export async function startServiceOn(
  t: TestService,
  prefix: string,
  env: Record<string, string> = {},
): Promise<Service> {
  return startService(loadConfig(extraEnv(t, prefix, env)));
}

/**
 * The service as a real child process (`tsx src/main.ts`), so that a test can kill it with SIGKILL
 * half way through a job: no graceful close, no handing back, its Postgres transactions aborted.
 */
export function spawnServiceProcess(t: TestService, prefix: string, env: Record<string, string> = {}): ChildProcess {
  const root = path.resolve(import.meta.dirname, '../..');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
    cwd: root,
    env: { ...process.env, ...extraEnv(t, prefix, env) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d) => {
    if (process.env.TEST_LOG_LEVEL) process.stderr.write(d);
  });
  return child;
}
