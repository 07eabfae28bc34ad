/**
 * The HTTP side while Redis is away: /readyz must answer 503, and the other open or API routes
 * must still answer (not hang until the client gives up).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Service, startService } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { freePort } from '../../src/infra/embedded.js';
import { API_TOKEN, createTestDatabase, TEST_RETIREMENT_SALT, waitFor } from '../support/service.js';

let port: number;
let redis: ChildProcess | undefined;
let service: Service;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
const dir = mkdtempSync(path.join(os.tmpdir(), 'pe-outage-'));

async function startRedis(): Promise<void> {
  redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const child = redis;
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
      return new Promise<true | undefined>((res) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.end();
          res(true);
        });
        s.on('error', () => res(undefined));
      });
    },
    10_000,
    `redis-server to accept connections on port ${port}`,
    50,
  );
}
async function stopRedis(): Promise<void> {
  const child = redis!;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

beforeAll(async () => {
  port = await freePort();
  await startRedis();
  database = await createTestDatabase();
  service = await startService(
    loadConfig({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      DATABASE_URL: database.url,
      RETIREMENT_SALT: TEST_RETIREMENT_SALT,
      QUEUE_PREFIX: 'outage',
      PORT: '0',
      HOST: '127.0.0.1',
      API_TOKENS: API_TOKEN,
      LOG_LEVEL: 'silent',
      WORKER_CONCURRENCY: '2',
    }),
  );
});

afterAll(async () => {
  await startRedis();
  // stop() does not finish once Redis has been restarted under it (BullMQ worker close hangs);
  // give it a bounded time so that the file ends.
  await Promise.race([service?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
  await stopRedis();
  await database?.drop();
});

/** Status of a GET, or 'no answer' when none came within 5 s. */
async function statusWithin(path: string, headers: Record<string, string> = {}): Promise<number | string> {
  try {
    return (await fetch(`${service.url}${path}`, { headers, signal: AbortSignal.timeout(5_000) })).status;
  } catch {
    return 'no answer';
  }
}

describe('with Redis down', () => {
  it('answers /readyz 503, and /metrics and the job API at all, within 5 s', async () => {
    expect(await statusWithin('/readyz')).toBe(200);
    await stopRedis();
    expect(await statusWithin('/readyz')).toBe(503);
    const metrics = await statusWithin('/metrics');
    const job = await statusWithin('/api/v1/jobs/some-job', { authorization: `Bearer ${API_TOKEN}` });
    expect({ metrics, job }).toEqual({ metrics: expect.any(Number), job: expect.any(Number) });
  });

  it('says so in /metrics: Redis down; reconnections are counted when they succeed', async () => {
    const text = await (await fetch(`${service.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
    expect(text).toMatch(/^program_enrollments_redis_up 0$/m);
    // One series for the process, counted when a lost connection comes back (README, "Faults").
    expect(text).toMatch(/^program_enrollments_redis_reconnects_total \d+$/m);
    expect(text).not.toContain('program_enrollments_queue_jobs{');
  });
});
