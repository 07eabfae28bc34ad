/**
 * /metrics: a scrape taken while jobs run passes Debian's `promtool check metrics`; job waits,
 * the oldest waiting job, stalls, Redis and the Postgres pool are exported; the schedule's next
 * run is not work waiting; and of several processes on the same queues only one exports the queue
 * gauges, so a sum over processes counts each job once.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';
import { newPrefix, queuesOn, startServiceOn } from './support/extra-services.js';
import { COURSE, useProgram } from './support/fixtures.js';
import { useTestService, waitFor } from './support/service.js';

/** `promtool check metrics` on `text`: its exit code and what it printed. */
function promtool(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

/** The value of one sample (`name{labels}` exactly as printed), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const scrape = async (url: string) => (await fetch(`${url}/metrics`)).text();

describe('/metrics', () => {
  const t = useTestService();
  const program = useProgram(t, { courses: [COURSE] });

  it('passes promtool check metrics on a scrape taken while a job runs, with waits, pool and Redis', async () => {
    const enrollments = Array.from({ length: 30_000 }, (_, i) => ({ student_key: `m-${i}`, status: 'enrolled' }));
    const job = await t.add('enrollments', 'write-program-enrollments', {
      program_uuid: program.program_uuid,
      action: 'create_or_update',
      enrollments,
    });
    // A scrape while the job runs and holds a Postgres connection (between chunks it holds none).
    const during = await waitFor(
      async () => {
        const s = await scrape(t.url);
        const active = sample(s, 'program_enrollments_queue_jobs{queue="enrollments",state="active"}');
        const busy = sample(s, 'program_enrollments_db_pool_connections{state="busy"}') ?? 0;
        return active === 1 && busy >= 1 ? s : undefined;
      },
      60_000,
      'a scrape while the job runs a statement',
      20,
    );
    const check = await promtool(during);
    expect(check.output).toBe('');
    expect(check.code).toBe(0);
    expect(sample(during, 'program_enrollments_queue_jobs{queue="enrollments",state="active"}')).toBe(1);
    expect(sample(during, 'program_enrollments_redis_up')).toBe(1);
    expect(sample(during, 'program_enrollments_db_pool_connections{state="busy"}')).toBeGreaterThanOrEqual(1);
    expect(sample(during, 'program_enrollments_db_pool_max')).toBeGreaterThanOrEqual(10);
    expect(during).not.toMatch(/^program_enrollments_nodejs_active_handles_total/m);

    expect((await t.wait(job)).state).toBe('completed');
    const after = await scrape(t.url);
    expect((await promtool(after)).code).toBe(0);
    expect(
      sample(after, 'program_enrollments_job_wait_seconds_count{queue="enrollments",name="write-program-enrollments"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'program_enrollments_queue_jobs{queue="enrollments",state="active"}')).toBe(0);
  });

  it("does not count the daily schedule's next run as delayed work", async () => {
    // The schedule's next run is a delayed job in BullMQ...
    expect(await t.queues.enrollments.getDelayedCount()).toBeGreaterThanOrEqual(1);
    const text = await scrape(t.url);
    // ...which the gauges show as a schedule, not as a delayed job.
    expect(sample(text, 'program_enrollments_queue_schedules{queue="enrollments"}')).toBe(1);
    expect(sample(text, 'program_enrollments_queue_jobs{queue="enrollments",state="delayed"}')).toBe(0);
  });

  it('exports the age of the oldest job waiting to start', async () => {
    expect(sample(await scrape(t.url), 'program_enrollments_queue_oldest_waiting_seconds{queue="accounts"}')).toBe(0);
    await t.queues.accounts.pause();
    try {
      const jobs = [
        await t.add('accounts', 'account-created', {
          event_id: randomUUID(),
          user_id: 7001,
          username: 'a',
          identities: [],
        }),
        await t.add('accounts', 'account-created', {
          event_id: randomUUID(),
          user_id: 7002,
          username: 'b',
          identities: [],
        }),
      ];
      const addedAt = jobs[0]!.timestamp;
      const text = await waitFor(
        async () => {
          const s = await scrape(t.url);
          return (sample(s, 'program_enrollments_queue_oldest_waiting_seconds{queue="accounts"}') ?? 0) >= 1
            ? s
            : undefined;
        },
        30_000,
        'the oldest waiting age to pass a second',
        100,
      );
      const age = sample(text, 'program_enrollments_queue_oldest_waiting_seconds{queue="accounts"}')!;
      expect(age).toBeLessThanOrEqual((Date.now() - addedAt) / 1000 + 0.01);
      expect(sample(text, 'program_enrollments_queue_jobs{queue="accounts",state="waiting"}')).toBe(2);
      await t.queues.accounts.resume();
      for (const job of jobs) expect((await t.wait(job)).state).toBe('completed');
    } finally {
      await t.queues.accounts.resume();
    }
  });

  it('has one process export the queue gauges; the others report only their own work', async () => {
    const peer = await t.startPeer();
    const texts = [await scrape(t.url), await scrape(peer.url), await scrape(t.url)];
    const exporting = texts.map((s) => sample(s, 'program_enrollments_queue_metrics_exporter'));
    // The first process held the lease already and keeps it on each scrape.
    expect(exporting).toEqual([1, 0, 1]);
    expect(texts[1]).not.toContain('program_enrollments_queue_jobs{');
    expect(texts[1]).toContain('program_enrollments_job_duration_seconds');
    expect(sample(texts[0]!, 'program_enrollments_queue_jobs{queue="enrollments",state="completed"}')).toBeGreaterThan(
      0,
    );
  });

  it('counts a stalled job when a worker finds it', async () => {
    // A job taken by a worker that then vanished without renewing its lock: the next service on
    // those queues finds it stalled (BullMQ checks every 30 s) and runs it again.
    const prefix = newPrefix();
    const producers = await queuesOn(prefix);
    const connection = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    const vanishing = new Worker('accounts', null, { connection, prefix, autorun: false, lockDuration: 1_000 });
    const service = await (async () => {
      const job = await producers.queues.accounts.add('account-created', {
        event_id: randomUUID(),
        user_id: 7003,
        username: 'c',
        identities: [],
      });
      expect((await vanishing.getNextJob('vanished-token'))?.id).toBe(job.id);
      await vanishing.close(true);
      await connection.quit();
      return startServiceOn(t, prefix);
    })();
    try {
      const text = await waitFor(
        async () => {
          const s = await scrape(service.url);
          return (sample(s, 'program_enrollments_job_stalls_total{queue="accounts"}') ?? 0) >= 1 ? s : undefined;
        },
        90_000,
        'the stalled job to be found',
        250,
      );
      expect(sample(text, 'program_enrollments_job_stalls_total{queue="accounts"}')).toBe(1);
    } finally {
      await service.stop();
      await producers.close();
    }
  });
});
