/**
 * CONTRACT "The service retries transient faults (database or Redis away, a lock held by
 * another worker) by itself, with backoff, whatever `attempts` the producer set".
 *
 * workers.ts stops self-retrying once `job.attemptsStarted` reaches MAX_SELF_RETRIES (100), but
 * every LockBusyError bounce (20-170 ms) is a new start. A job that waited behind a long job's
 * learner-course locks for ~10 s has used them all up, and its next transient fault (here a
 * deadlock that Postgres breaks by aborting the job's transaction) fails the job.
 */
import { randomUUID } from 'node:crypto';
import { Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { COURSE, enrollOk, ORG, uniqueKey, useProgram } from '../support/fixtures.js';
import { useTestService, waitFor } from '../support/service.js';

const t = useTestService();
const P = useProgram(t);
let redis: Redis;

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
});

afterAll(async () => {
  await redis?.quit();
});

describe('a job that waited long on a learner-course lock', () => {
  it('still retries a transient database fault by itself', { timeout: 180_000 }, async () => {
    const key = uniqueKey().toLowerCase();
    await enrollOk(t, P.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    // Another worker holds the learner-course lock (as a long bulk write does, chunk after chunk).
    const lockKey = `${t.prefix}:lock:{${[ORG, key, COURSE].map(encodeURIComponent).join('|')}}`;
    await redis.set(lockKey, randomUUID(), 'PX', 120_000);

    const jobId = `edge-${randomUUID()}`;
    const job = await t.add(
      'enrollments',
      'write-program-course-enrollments',
      {
        program_uuid: P.program_uuid,
        course_key: COURSE,
        action: 'create_or_update',
        enrollments: [{ student_key: key, status: 'active' }],
      },
      { jobId },
    );
    await waitFor(
      async () => {
        const j = await Job.fromId(t.queues.enrollments, job.id!);
        return j && j.attemptsStarted >= 101 ? true : undefined;
      },
      120_000,
      'a hundred lock bounces',
      100,
    );

    // The lock is released; in Postgres the job meets a deadlock, which Postgres breaks by aborting
    // the job's transaction (40P01, a fault that retrying cures).
    let proceed!: () => void;
    const proceeding = new Promise<void>((r) => (proceed = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = t.sql
      .begin(async (tx) => {
        await tx`set local deadlock_timeout = '20s'`; // the job's side detects the deadlock first
        await tx`select 1 from learners where organization_key = ${ORG} and student_key_lower = ${key} for update`;
        locked();
        await proceeding;
        // The job has claimed its chunk and waits for the learner row: wait for its chunk row.
        await tx`insert into job_chunks (key, start, size, results) values (${`enrollments/${jobId}`}, 0, 1, 'null'::jsonb)`;
        throw new Error('roll back');
      })
      .catch(() => {});
    await isLocked;
    await redis.del(lockKey);
    await waitFor(
      async () => {
        const [row] = await t.sql`
        select pid from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and query ilike '%for update of l%'`;
        return row ? Number(row.pid) : undefined;
      },
      20_000,
      'the job waiting on the learner row',
    );
    proceed();
    await holder;

    const done = await t.wait(job, 60_000);
    expect(done.failedReason).toBeUndefined();
    expect(done.state).toBe('completed');
    expect(done.result.results).toEqual({ [key]: 'active' });
  });
});
