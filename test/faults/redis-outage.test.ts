/**
 * Redis restarted mid-run (same port and directory, append-only file), then stopped for 45 s: no
 * job lost, none left in `active` without a living lock 10 s after Redis is back, every effect
 * applied once, and each process logs the outage in a few lines, not one per retry.
 */
import { describe, expect, it } from 'vitest';
import { expectHistoryReplaysToState, learnersWithTwoActiveSeats, newProgram, uniqueKey } from '../support/fixtures.js';
import {
  addAccountEvents,
  addBulkWrite,
  enrollWaiting,
  httpGet,
  logLines,
  programCounts,
  report,
  sleep,
  useScene,
  waitAllDone,
  waitUntil,
} from './support.js';

const OUTAGE_MS = 45_000;

describe('Redis restarted and away for 45 s', () => {
  const scene = useScene({ services: 2, env: { WORKER_CONCURRENCY: '4', WRITE_CHUNK_SIZE: '500' } });

  /** Jobs in `active` whose lock is gone: nobody works on them (BullMQ's lock key per job). */
  const stuck = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const q of Object.values(scene.world.queues)) {
      for (const id of await scene.producer.lrange(`${scene.world.prefix}:${q.name}:active`, 0, -1)) {
        if (!(await scene.producer.exists(`${scene.world.prefix}:${q.name}:${id}:lock`))) out.push(`${q.name}/${id}`);
      }
    }
    return out;
  };

  /** Jobs completed or failed so far, both queues. */
  const finishedCount = async (): Promise<number> => {
    let n = 0;
    for (const q of Object.values(scene.world.queues)) n += (await q.getCompletedCount()) + (await q.getFailedCount());
    return n;
  };

  it('loses no job and leaves none stuck', async () => {
    const { world, redis, processes } = scene;
    const program = await newProgram(world.t);
    const waiting = await enrollWaiting(world, program, 300, 'rd-acct');
    const bulks = [15_000, 15_000].map((n) => Array.from({ length: n }, () => uniqueKey('rd-bulk')));
    const ids: Record<'enrollments' | 'accounts', string[]> = { enrollments: [], accounts: [] };
    const addBulk = async (keys: string[]) => ids.enrollments.push((await addBulkWrite(world, program, keys)).id!);
    const addEvents = async (from: number, to: number) =>
      ids.accounts.push(...(await addAccountEvents(world, program, waiting.slice(from, to))));
    await addBulk(bulks[0]!);
    await addEvents(0, 100);
    await waitUntil(
      async () => (await world.queues.enrollments.getActiveCount()) > 0 || undefined,
      60_000,
      'a bulk job running',
    );

    // 1. A restart: SIGTERM (the append-only file is flushed), started again on the same data.
    const doneBeforeRestart = await finishedCount();
    await redis.stop();
    await redis.start();
    let restarts = 1;
    await addEvents(100, 200);

    // 2. Once every process has all its connections back (it says so once) and jobs finish again,
    // an outage of 45 s while jobs run; a producer adds work meanwhile (its offline queue).
    const backLines = () => processes.map((p) => logLines(p, 30).filter((l) => l.msg === 'Redis is back').length);
    await waitUntil(
      async () => backLines().every((n) => n >= 1) && (await finishedCount()) > doneBeforeRestart,
      120_000,
      'every process back on Redis and jobs finishing after the restart',
    );
    await redis.stop();
    const addedDuringOutage = Promise.all([addBulk(bulks[1]!), addEvents(200, 300)]);
    // The fault itself: Redis stays away this long (not a wait for a state).
    await sleep(OUTAGE_MS);
    await redis.start();
    restarts += 1;
    const backAt = Date.now();
    await addedDuringOutage;

    // None stuck for more than 10 s after Redis is back: every active job has a living lock again
    // (its run renewed it, or the stall check handed it on) by then.
    const stuckAfter10s = await waitUntil(
      async () => ((await stuck()).length === 0 ? [] : undefined),
      Math.max(0, backAt + 10_000 - Date.now()),
      'no job in active without a lock',
    ).catch(async () => stuck());
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
    const { pes, unlinked, created, links } = await programCounts(world, program.program_uuid);
    const bulkTotal = bulks[0]!.length + bulks[1]!.length;
    expect({ pes, unlinked }).toEqual({ pes: bulkTotal + waiting.length, unlinked: bulkTotal });
    const violations = await learnersWithTwoActiveSeats(world.t);
    await expectHistoryReplaysToState(world.t);

    // Logging: a handful of lines per process for two outages, not one per reconnect attempt.
    const noisy = processes.map((p) => logLines(p, 40).filter((l) => !/job failed/.test(l.msg)).length);
    const metrics = (await httpGet(`${processes[0]!.url}/metrics`)).body;

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
    for (const n of backLines()) expect(n).toBe(2);
    expect(metrics).toMatch(/program_enrollments_redis_reconnects_total [1-9]/);
  });
});
