import type { Job } from 'bullmq';
import { beforeAll, describe, expect, it } from 'vitest';
import { asRetryable, RetryableError } from '../src/jobs/errors.js';
import { newProgram, uniqueKey } from './support/fixtures.js';
import { useTestService, waitFor } from './support/service.js';

/**
 * A fault that retrying cures never fails a job nor shows in its results, whatever `attempts` the
 * producer set. Here Postgres itself refuses the service's statements: this database gives up on
 * a lock after 200 ms, and the test holds the table the job writes for a while.
 */
describe('transient faults', () => {
  const t = useTestService({ WRITE_CHUNK_SIZE: '100' });
  beforeAll(async () => {
    await t.sql.unsafe(`alter database "${new URL(t.databaseUrl).pathname.slice(1)}" set lock_timeout = '200ms'`);
    // New connections pick the setting up: close every one of the service's, busy or idle (it
    // reconnects on demand and retries what a cut interrupted); one left open would wait on the
    // test's lock without a timeout.
    await t.sql`
      select pg_terminate_backend(pid) from pg_stat_activity
      where datname = current_database() and application_name like 'program-enrollments %'`;
  });

  /** The service's count of write-program-enrollments runs it retried, as /metrics shows it. */
  async function retriedWrites(): Promise<number> {
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    const line = metrics.match(
      /^program_enrollments_jobs_total\{queue="enrollments",name="write-program-enrollments",outcome="retried"\} (\d+)$/m,
    );
    return Number(line?.[1] ?? 0);
  }

  it('retries a job whose statements time out on a lock, with attempts: 1', async () => {
    const program = await newProgram(t);
    const keys = Array.from({ length: 5_000 }, () => uniqueKey());
    let job!: Job;
    await t.sql.begin(async (tx) => {
      await tx`lock table program_enrollments in access exclusive mode`;
      job = await t.add(
        'enrollments',
        'write-program-enrollments',
        {
          program_uuid: program.program_uuid,
          action: 'create',
          enrollments: keys.map((k) => ({ student_key: k, status: 'enrolled' })),
        },
        { attempts: 1 },
      );
      // Hold the lock until the job has met it and been retried at least once.
      await waitFor(
        async () => {
          if ((await job.getState()) === 'failed') throw new Error(`the job failed: ${job.id}`);
          return (await retriedWrites()) > 0 ? true : undefined;
        },
        60_000,
        'a retry of write-program-enrollments',
        50,
      );
    });

    const done = await t.wait(job, 120_000);
    expect(done.state).toBe('completed');
    expect(done.result.counts).toEqual({ enrolled: 5_000 });
    const [{ n }] =
      (await t.sql`select count(*)::int as n from program_enrollments where program_uuid = ${program.program_uuid}`) as any;
    expect(n).toBe(5_000);
    expect(await retriedWrites()).toBeGreaterThan(0);
  });
});

/**
 * Redis Cluster faults are transient (docs/contract.md, "Delivery, retries and idempotency"): while
 * a restarted master rejoins, ioredis gives up on a command after 16 redirections and says so with
 * the last reply it met. These are the messages it produced in the fault suite's cluster scenario;
 * a job that met one used to fail instead of being retried.
 */
describe('Redis Cluster faults', () => {
  it('are retried, and an ordinary error that only looks like one is not', () => {
    for (const message of [
      'Too many Cluster redirections. Last error: ReplyError: MOVED 5564 127.0.0.1:37397',
      'Too many Cluster redirections. Last error: ReplyError: CLUSTERDOWN The cluster is down',
      'Too many Cluster redirections. Last error: Error: Connection is closed.',
      'Failed to refresh slots cache.',
      "Cluster isn't ready and enableOfflineQueue options is false",
      'TRYAGAIN Multiple keys request during rehashing of slot',
      'ASK 3999 127.0.0.1:6381',
    ]) {
      expect(asRetryable(new Error(message)), message).toBeInstanceOf(RetryableError);
    }
    for (const message of ['a task was asked to stop', 'removed 3 learners', 'invalid payload: course_key: loading'])
      expect(asRetryable(new Error(message)), message).toBeNull();
  });
});
