/**
 * Redis restarted mid-run (same port and directory, append-only file), then stopped for 45 s: no
 * job lost, none left in `active` without a living lock 10 s after Redis is back, every effect
 * applied once, and each process logs the outage in a few lines, not one per retry.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accountCreatedPayload,
  expectHistoryReplaysToState,
  learnersWithTwoActiveSeats,
  newAccount,
  newProgram,
  uniqueKey,
} from '../support/fixtures.js';
import {
  logLines,
  openWorld,
  type PrivateRedis,
  report,
  type ServiceProcess,
  sleep,
  spawnServices,
  startRedis,
  type World,
  waitAllDone,
  waitUntil,
} from './support.js';

const OUTAGE_MS = 45_000;

describe('Redis restarted and away for 45 s', () => {
  let redis: PrivateRedis;
  let producer: Redis;
  let world: World;
  const processes: ServiceProcess[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    producer = new Redis(redis.url, { maxRetriesPerRequest: null });
    producer.on('error', () => {});
    world = await openWorld({ REDIS_URL: redis.url }, producer);
    await spawnServices(2, world.env({ WORKER_CONCURRENCY: '4', WRITE_CHUNK_SIZE: '500' }), processes);
  });
  afterAll(async () => {
    for (const p of processes) await p.kill('SIGTERM');
    await world?.close();
    producer?.disconnect();
    await redis?.destroy();
  });

  /** Jobs in `active` whose lock is gone: nobody works on them (BullMQ's lock key per job). */
  const stuck = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const q of Object.values(world.queues)) {
      for (const id of await producer.lrange(`${world.prefix}:${q.name}:active`, 0, -1)) {
        if (!(await producer.exists(`${world.prefix}:${q.name}:${id}:lock`))) out.push(`${q.name}/${id}`);
      }
    }
    return out;
  };

  it('loses no job and leaves none stuck', async () => {
    const program = await newProgram(world.t);
    const waiting = Array.from({ length: 300 }, () => ({ key: uniqueKey('rd-acct'), account: newAccount() }));
    expect(
      (
        await world.t.run('enrollments', 'write-program-enrollments', {
          program_uuid: program.program_uuid,
          action: 'create',
          enrollments: waiting.map((w) => ({ student_key: w.key, status: 'enrolled' })),
        })
      ).state,
    ).toBe('completed');
    const bulks = [15_000, 15_000].map((n) => Array.from({ length: n }, () => uniqueKey('rd-bulk')));
    const ids: Record<'enrollments' | 'accounts', string[]> = { enrollments: [], accounts: [] };
    const addBulk = async (keys: string[]) =>
      ids.enrollments.push(
        (
          await world.queues.enrollments.add('write-program-enrollments', {
            program_uuid: program.program_uuid,
            action: 'create',
            enrollments: keys.map((k) => ({ student_key: k, status: 'enrolled' })),
          })
        ).id!,
      );
    const addEvents = async (from: number, to: number) => {
      const jobs = await world.queues.accounts.addBulk(
        waiting.slice(from, to).map((w) => ({
          name: 'account-created',
          data: accountCreatedPayload(
            w.account,
            [{ organization_key: program.organization_key, external_user_key: w.key }],
            randomUUID(),
          ),
        })),
      );
      ids.accounts.push(...jobs.map((j) => j.id!));
    };
    await addBulk(bulks[0]!);
    await addEvents(0, 100);
    await waitUntil(
      async () => (await world.queues.enrollments.getActiveCount()) > 0 || undefined,
      60_000,
      'a bulk job running',
    );

    // 1. A restart: SIGTERM (the append-only file is flushed), started again on the same data.
    await redis.stop();
    await redis.start();
    let restarts = 1;
    await addEvents(100, 200);

    // 2. An outage of 45 s while jobs run; a producer adds work meanwhile (its offline queue).
    await sleep(2_000);
    await redis.stop();
    const addedDuringOutage = Promise.all([addBulk(bulks[1]!), addEvents(200, 300)]);
    await sleep(OUTAGE_MS);
    await redis.start();
    restarts += 1;
    const backAt = Date.now();
    await addedDuringOutage;

    await sleep(Math.max(0, backAt + 10_000 - Date.now()));
    const stuckAfter10s = await stuck();
    expect(stuckAfter10s).toEqual([]);

    const enrollments = await waitAllDone(world.queues.enrollments, ids.enrollments, 400_000);
    const accounts = await waitAllDone(world.queues.accounts, ids.accounts, 400_000);
    expect(enrollments.failed).toEqual([]);
    expect(accounts.failed).toEqual([]);
    const lost = enrollments.missing.length + accounts.missing.length;
    expect(lost).toBe(0);

    for (const [i, id] of ids.enrollments.entries()) {
      const job = (await world.queues.enrollments.getJob(id))!;
      expect(job.returnvalue.counts).toEqual({ enrolled: bulks[i]!.length });
    }
    const [{ pes, unlinked, created, links }] = (await world.sql`
      select (select count(*)::int from program_enrollments where program_uuid = ${program.program_uuid}) as pes,
             (select count(*)::int from program_enrollments where program_uuid = ${program.program_uuid} and user_id is null) as unlinked,
             (select count(*)::int from history where entity = 'program_enrollment' and action = 'created') as created,
             (select count(*)::int from history where entity = 'program_enrollment' and action = 'changed' and changes ? 'user_id') as links`) as any;
    const bulkTotal = bulks[0]!.length + bulks[1]!.length;
    expect({ pes, unlinked }).toEqual({ pes: bulkTotal + waiting.length, unlinked: bulkTotal });
    const violations = await learnersWithTwoActiveSeats(world.t);
    await expectHistoryReplaysToState(world.t);

    // Logging: a handful of lines per process for two outages, not one per reconnect attempt.
    const noisy = processes.map((p) => logLines(p, 40).filter((l) => !/job failed/.test(l.msg)).length);
    const backLines = processes.map((p) => logLines(p, 30).filter((l) => l.msg === 'Redis is back').length);
    const metrics = await (await fetch(`${processes[0]!.url}/metrics`)).text();

    report({
      scenario: 'redis restarted, then away 45 s',
      redis_restarts: restarts,
      jobs: ids.enrollments.length + ids.accounts.length + 2,
      lost,
      duplicated: created - pes + (links - waiting.length),
      violations,
    });
    expect(created).toBe(pes);
    expect(links).toBe(waiting.length);
    expect(violations).toBe(0);
    for (const n of noisy) expect(n).toBeLessThanOrEqual(8);
    for (const n of backLines) expect(n).toBe(2);
    expect(metrics).toMatch(/program_enrollments_redis_reconnects_total [1-9]/);
  });
});
