/**
 * docs/contract.md "Limits" and "Payload errors", second edition: what validation used to let
 * through reached Postgres (a lone surrogate failed a whole job and retried it, or was stored as
 * U+FFFD; an 8,000-character username failed an index and retried), and one failed reason could
 * hold megabytes. Every job here fails at once, without a retry, writing nothing.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';
import { MAX_FAILED_REASON_BYTES } from '../../src/contract/payloads.js';
import { ReadableJob } from '../../src/queue/readable-job.js';
import { accountCreatedPayload, dbState, newAccount, tableCounts, useProgram } from '../support/fixtures.js';
import { useTestService, waitFor } from '../support/service.js';

const t = useTestService();
const program = useProgram(t);

const RETRIES = { attempts: 5, backoff: { type: 'fixed', delay: 10 } } as const;

/** Adds a job that could be retried; expects it failed at the first attempt, wrote nothing; its reason. */
async function failsAtOnce(queue: 'enrollments' | 'accounts', name: string, data: unknown): Promise<string> {
  const before = await tableCounts(t);
  const done = await t.run(queue, name, data, RETRIES);
  expect(done.state, done.failedReason).toBe('failed');
  expect(done.job.attemptsMade).toBe(1);
  expect(await tableCounts(t)).toEqual(before);
  return done.failedReason!;
}

const write = (enrollments: unknown[], extra: Record<string, unknown> = {}) => ({
  program_uuid: program.program_uuid,
  action: 'create_or_update',
  enrollments,
  ...extra,
});

describe('well-formed Unicode', () => {
  it('refuses a lone surrogate in a student key, naming it, instead of failing in Postgres', async () => {
    const reason = await failsAtOnce(
      'enrollments',
      'write-program-enrollments',
      write([
        { student_key: 'fine-1', status: 'enrolled' },
        { student_key: 'x\ud800y', status: 'enrolled' },
      ]),
    );
    expect(reason).toBe('invalid payload: enrollments.1.student_key: must be well-formed Unicode (no lone surrogates)');
  });

  it('refuses lone surrogates in username, email and event_id rather than storing U+FFFD', async () => {
    const account = newAccount();
    const base = accountCreatedPayload(account, []);
    for (const [field, value] of [
      ['username', 'jdoe\udc00'],
      ['email', 'a\ud83c@example.org'],
      ['event_id', `\udfff${randomUUID()}`],
    ] as const) {
      const reason = await failsAtOnce('accounts', 'account-created', { ...base, [field]: value });
      expect(reason).toBe(`invalid payload: ${field}: must be well-formed Unicode (no lone surrogates)`);
    }
    const [row] = await t.sql`select count(*)::int as n from accounts where user_id = ${account.user_id}`.catch(() => [
      { n: 0 },
    ]);
    expect(row!.n).toBe(0);
  });

  it('refuses a lone surrogate in the keys of the other jobs', async () => {
    const course = program.courses[0]!.course_key;
    expect(
      await failsAtOnce('enrollments', 'write-program-course-enrollments', {
        program_uuid: program.program_uuid,
        course_key: course,
        action: 'create',
        enrollments: [{ student_key: 'k\ud800', status: 'active' }],
      }),
    ).toMatch(/^invalid payload: enrollments\.0\.student_key: must be well-formed/);
    expect(
      await failsAtOnce('accounts', 'account-created', {
        ...accountCreatedPayload(newAccount(), [{ organization_key: 'UoX', external_user_key: '\udc01' }]),
      }),
    ).toMatch(/^invalid payload: identities\.0\.external_user_key: must be well-formed/);
    expect(
      await failsAtOnce('accounts', 'course-enrollment-changed', {
        event_id: randomUUID(),
        user_id: newAccount().user_id,
        course_key: course,
        mode: 'verified\ud800',
        is_active: true,
      }),
    ).toMatch(/^invalid payload: mode: must be well-formed/);
  });
});

describe('lengths in code points', () => {
  it('refuses an 8,000-character username instead of failing the index and retrying', async () => {
    const account = { ...newAccount(), username: 'u'.repeat(8_000) };
    expect(await failsAtOnce('accounts', 'account-created', accountCreatedPayload(account, []))).toBe(
      'invalid payload: username: must be at most 150 characters',
    );
  });

  it('limits requested_by to 255 code points', async () => {
    const reason = await failsAtOnce(
      'enrollments',
      'write-program-enrollments',
      write([{ student_key: 'r1', status: 'enrolled' }], { requested_by: 'x'.repeat(1024 * 1024) }),
    );
    expect(reason).toBe('invalid payload: requested_by: must be at most 255 characters');
  });

  it('counts code points, not UTF-16 units: 255 × 🎓 is a valid key and 256 is not', async () => {
    const key = '🎓'.repeat(255);
    const done = await t.run(
      'enrollments',
      'write-program-enrollments',
      write([{ student_key: key, status: 'enrolled' }], { requested_by: '🎓'.repeat(255) }),
    );
    expect(done.state, done.failedReason).toBe('completed');
    expect(done.result.results[key]).toBe('enrolled');
    expect(
      await failsAtOnce(
        'enrollments',
        'write-program-enrollments',
        write([{ student_key: `${key}🎓`, status: 'enrolled' }]),
      ),
    ).toBe('invalid payload: enrollments.0.student_key: must be at most 255 characters');
  });

  it('refuses keys made only of invisible characters', async () => {
    for (const invisible of ['\u200b', '\u00a0\u200d', '\ufeff\u2060', '\u3164', '\u00ad']) {
      expect(
        await failsAtOnce(
          'enrollments',
          'write-program-enrollments',
          write([{ student_key: invisible, status: 'enrolled' }]),
        ),
      ).toMatch(/^invalid payload: enrollments\.0\.student_key: must (not be only invisible characters|not be empty)$/);
    }
  });

  it('limits the courses of a program and the course keys of a curriculum to 1,000', async () => {
    const keys = Array.from({ length: 1_001 }, (_, i) => `course-v1:UoX+L${i}+2026`);
    const reason = await failsAtOnce('enrollments', 'upsert-program', {
      program_uuid: randomUUID(),
      organization_key: 'UoX',
      curricula: [{ curriculum_uuid: randomUUID(), is_active: true, course_keys: keys }],
      courses: keys.map((course_key) => ({ course_key })),
    });
    expect(reason).toMatch(/curricula\.0\.course_keys: .*1000/);
    expect(reason).toMatch(/courses: .*1000/);
  });
});

describe('failed reasons', () => {
  it('name the first 100 problems, then how many more, within 64 KiB', async () => {
    const enrollments = Array.from({ length: 100_000 }, () => ({ student_key: 'same\u0000key', status: 'enrolled' }));
    const reason = await failsAtOnce('enrollments', 'write-program-enrollments', write(enrollments));
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(MAX_FAILED_REASON_BYTES);
    const problems = reason.replace(/^invalid payload: /, '').split('; ');
    expect(problems).toHaveLength(101);
    expect(problems[0]).toBe('enrollments.0.student_key: must not contain NUL characters');
    expect(problems[99]).toBe('enrollments.99.student_key: must not contain NUL characters');
    expect(problems[100]).toBe('and 99900 more problems');
  });
});

describe('unreadable job data', () => {
  async function addUnreadable(name: string, data: string) {
    // A broken producer: the job's data field in Redis is whatever it wrote.
    const job = await t.add('enrollments', name, {}, { delay: 600_000, attempts: 5 });
    const redis = new Redis(inject('redisUrl'));
    try {
      await redis.hset(`${t.prefix}:enrollments:${job.id}`, 'data', data);
    } finally {
      redis.disconnect();
    }
    await job.promote();
    return job;
  }

  it('fails data that is not JSON at once as invalid payload: (root), and the job API answers for it', async () => {
    const before = await dbState(t);
    const job = await addUnreadable('write-program-enrollments', '{"program_uuid": ');
    await waitFor(async () => ((await job.getState()) === 'failed' ? true : undefined), 20_000, 'the job to fail');
    // The test's own producer reads the job as BullMQ does, so it would throw on the data too.
    const failed = (await ReadableJob.fromId(t.queues.enrollments, job.id!))!;
    expect(failed.failedReason).toBe('invalid payload: (root): job data is not JSON');
    expect(failed.attemptsMade).toBe(1);
    expect(await dbState(t)).toEqual(before);

    const status = await t.api(`/api/v1/jobs/${job.id}`);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({
      state: 'Failed',
      error: 'invalid payload: (root): job data is not JSON',
    });
  });

  it('fails a long records array cut short (bulk by its first records) as not JSON too', async () => {
    const records = Array.from({ length: 2_000 }, (_, i) => `{"student_key":"s${i}","status":"active"}`);
    const job = await addUnreadable('write-program-enrollments', `{"enrollments":[${records.join(',')}`);
    await waitFor(async () => ((await job.getState()) === 'failed' ? true : undefined), 30_000, 'the job to fail');
    const failed = (await ReadableJob.fromId(t.queues.enrollments, job.id!))!;
    expect(failed.failedReason).toBe('invalid payload: (root): job data is not JSON');
    expect(failed.attemptsMade).toBe(1);
  });

  it('fails data that is JSON but not an object as invalid payload: (root)', async () => {
    for (const data of ['42', '"text"', 'null', '[1,2]']) {
      const job = await addUnreadable('retire-learner', data);
      const done = await t.wait(job, 20_000);
      expect(done.state).toBe('failed');
      expect(done.failedReason).toMatch(/^invalid payload: \(root\): /);
      expect(done.job.attemptsMade).toBe(1);
    }
  });
});

describe('metric labels', () => {
  it('count unknown job names as `unknown`, so producers cannot grow /metrics', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `random-name-${i}-${randomUUID()}`);
    const jobs = await Promise.all(names.map((n) => t.add('enrollments', n, {})));
    for (const job of jobs) expect((await t.wait(job, 20_000)).state).toBe('failed');
    const text = await (await fetch(`${t.url}/metrics`)).text();
    for (const n of names) expect(text).not.toContain(n);
    expect(text).toMatch(/program_enrollments_jobs_total\{queue="enrollments",name="unknown",outcome="failed"\} 20/);
  });
});
