/**
 * Bulk writes (CONTRACT.md: 0 to 100,000 records per job; progress at least every 1,000 records as
 * {done, total}, the last with done == total). Prints the learners per second of each job.
 */
import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  COURSE,
  cesOf,
  newProgram,
  ORG,
  type ProgressWatch,
  pcesOfLearner,
  peOf,
  uniqueUserId,
  useProgram,
  type WriteResult,
  watchProgress,
} from './support/fixtures.js';
import { type FinishedJob, useTestService } from './support/service.js';

const N = 100_000;
const REALIZED = 1_000;
const TIMEOUT = 600_000;

const t = useTestService();
const P = useProgram(t);
let progress: ProgressWatch;
const keys = Array.from({ length: N }, (_, i) => `bulk-${String(i).padStart(6, '0')}`);
const userOf = new Map<string, number>();

beforeAll(async () => {
  progress = await watchProgress(t);
  // 1,000 of the learners have accounts already (every 100th).
  const announced = keys.filter((_, i) => i % 100 === 0).slice(0, REALIZED);
  const jobs = await t.queues.accounts.addBulk(
    announced.map((k) => {
      const user_id = uniqueUserId();
      userOf.set(k, user_id);
      return {
        name: 'account-created',
        data: {
          event_id: `bulk-${k}`,
          user_id,
          username: `bulk-user-${user_id}`,
          identities: [{ organization_key: ORG, external_user_key: k }],
        },
      };
    }),
  );
  const done = await Promise.all(jobs.map((j) => t.wait(j, 300_000)));
  for (const d of done) expect(d.state, d.failedReason).toBe('completed');
}, TIMEOUT);

afterAll(async () => {
  await progress?.close();
});

async function timed(name: string, data: unknown): Promise<{ done: FinishedJob<WriteResult>; seconds: number }> {
  const started = Date.now();
  const job: Job = await t.add('enrollments', name, data);
  const done = await t.wait<WriteResult>(job, TIMEOUT);
  return { done, seconds: (Date.now() - started) / 1000 };
}

function expectProgress(done: FinishedJob<WriteResult>): void {
  // The last report, as BullMQ keeps it on the job.
  expect(done.job.progress).toEqual({ done: N, total: N });
  // Every report, as the queue's event stream carried them: {done, total}, never more than 1,000 apart.
  const reports = progress.of(done.job.id!);
  expect(reports.length).toBeGreaterThanOrEqual(N / 1000);
  let last = 0;
  for (const r of reports) {
    expect(r.total).toBe(N);
    expect(r.done).toBeGreaterThanOrEqual(last);
    expect(r.done - last).toBeLessThanOrEqual(1000);
    last = r.done;
  }
  expect(last).toBe(N);
}

describe('bulk writes of 100,000 learners', () => {
  it('more than 100,000 records is an invalid payload naming enrollments, and writes nothing', {
    timeout: TIMEOUT,
  }, async () => {
    const other = await newProgram(t);
    const done = await t.run(
      'enrollments',
      'write-program-enrollments',
      {
        program_uuid: other.program_uuid,
        action: 'create',
        enrollments: Array.from({ length: N + 1 }, (_, i) => ({ student_key: `over-${i}`, status: 'enrolled' })),
      },
      { attempts: 3 },
    );
    expect(done.state).toBe('failed');
    expect(done.failedReason).toMatch(/^invalid payload: enrollments: \S/);
    expect(done.job.attemptsMade).toBe(1);
    const [{ n }] =
      (await t.sql`select count(*)::int as n from program_enrollments where program_uuid = ${other.program_uuid}`) as any;
    expect(n).toBe(0);
  });

  it('a 100,000-learner write-program-enrollments job completes', { timeout: TIMEOUT }, async () => {
    const statuses = ['enrolled', 'pending'];
    const { done, seconds } = await timed('write-program-enrollments', {
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: keys.map((k, i) => ({ student_key: k, status: statuses[i % 2] })),
      requested_by: 'registrar:bulk',
    });
    expect(done.state, done.failedReason).toBe('completed');
    const processing = (done.job.finishedOn! - done.job.processedOn!) / 1000;
    console.log(
      `write-program-enrollments: ${N} learners in ${seconds.toFixed(1)} s from add to completion = ${Math.round(N / seconds)} learners/s ` +
        `(${Math.round(N / processing)} learners/s of processing)`,
    );
    expect(Object.keys(done.result.results)).toHaveLength(N);
    expect(done.result.code).toBe(200);
    expect(done.result.counts).toEqual({ enrolled: N / 2, pending: N / 2 });
    expect(done.result.results[keys[0]!]).toBe('enrolled');
    expect(done.result.results[keys[N - 1]!]).toBe('pending');
    expectProgress(done);
    const [row] = await t.sql`
      select count(*)::int as n, count(user_id)::int as realized, count(distinct lower(student_key))::int as distinct_keys
      from program_enrollments where program_uuid = ${P.program_uuid}`;
    expect({ ...row }).toEqual({ n: N, realized: REALIZED, distinct_keys: N });
    const [{ h }] =
      (await t.sql`select count(*)::int as h from history where entity = 'program_enrollment' and job_id = ${done.job.id!}`) as any;
    expect(h).toBe(N);
    expect((await peOf(t, P.program_uuid, keys[100]!))!.user_id).toBe(userOf.get(keys[100]!));
  });

  it('a 100,000-learner write-program-course-enrollments job completes', { timeout: TIMEOUT }, async () => {
    const { done, seconds } = await timed('write-program-course-enrollments', {
      program_uuid: P.program_uuid,
      course_key: COURSE,
      action: 'create_or_update',
      enrollments: keys.map((k, i) => ({ student_key: k, status: i % 4 === 3 ? 'inactive' : 'active' })),
    });
    expect(done.state, done.failedReason).toBe('completed');
    const processing = (done.job.finishedOn! - done.job.processedOn!) / 1000;
    console.log(
      `write-program-course-enrollments: ${N} learners in ${seconds.toFixed(1)} s from add to completion = ${Math.round(N / seconds)} learners/s ` +
        `(${Math.round(N / processing)} learners/s of processing)`,
    );
    expect(Object.keys(done.result.results)).toHaveLength(N);
    expect(done.result.code).toBe(200);
    expect(done.result.counts).toEqual({ active: (N * 3) / 4, inactive: N / 4 });
    expectProgress(done);
    const [row] = await t.sql`
      select count(*)::int as n, count(*) filter (where pce.status = 'active')::int as active,
             count(pce.course_enrollment_id)::int as realized
      from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id
      where pe.program_uuid = ${P.program_uuid} and pce.course_key = ${COURSE}`;
    expect({ ...row }).toEqual({ n: N, active: (N * 3) / 4, realized: REALIZED });
    // The realized learners got their CE: every 100th key, index i % 4 === 0 -> active.
    const [ces] = await t.sql`
      select count(*)::int as n, count(*) filter (where is_active and mode = 'masters')::int as active_masters
      from course_enrollments where course_key = ${COURSE}`;
    expect({ ...ces }).toEqual({ n: REALIZED, active_masters: REALIZED });
    const sample = keys[500]!;
    const [ce] = await cesOf(t, userOf.get(sample)!, COURSE);
    expect((await pcesOfLearner(t, sample, COURSE))[0]!.course_enrollment_id).toBe(ce!.id);
  });
});
