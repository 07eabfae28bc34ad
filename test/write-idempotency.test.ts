/**
 * Exactly-once effects of the write jobs (CONTRACT.md "Delivery, retries and idempotency", SPEC.md
 * rule 13):
 *  - a job re-submitted under the same jobId after BullMQ removed the first returns the first
 *    result and applies nothing;
 *  - a bulk job killed half way (its process SIGKILLed: no graceful close) and run again by BullMQ
 *    (stalled-job recovery by another process) ends exactly as the same payload run cleanly.
 */
import { Job, type Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { newPrefix, queuesOn, spawnServiceProcess, startServiceOn } from './support/extra-services.js';
import {
  announceAccount,
  announceLearner,
  COURSE,
  ceOf,
  courseEnrollmentChanged,
  dbState,
  enroll,
  enrollCourseOk,
  enrollOk,
  expectHistoryReplaysToState,
  isCourseStaff,
  newProgram,
  ORG,
  type ProgramPayload,
  pceOf,
  peOf,
  uniqueKey,
  useProgram,
  type WriteResult,
} from './support/fixtures.js';
import { type FinishedJob, useTestService, waitFor, waitJob } from './support/service.js';

const t = useTestService({ WRITE_CHUNK_SIZE: '500' });
const P = useProgram(t);

async function historyCountOfJob(jobId: string): Promise<number> {
  const [{ n }] = (await t.sql`select count(*)::int as n from history where job_id = ${jobId}`) as any;
  return n;
}

describe('re-submission under the same jobId', () => {
  it('a program write re-added after BullMQ removed it returns the first result and applies nothing', async () => {
    const [a, b, c, d] = [uniqueKey(), uniqueKey(), uniqueKey(), uniqueKey('Dup')];
    const data = {
      program_uuid: P.program_uuid,
      action: 'create_or_update',
      enrollments: [
        { student_key: a, status: 'enrolled' },
        { student_key: b, status: 'pending' },
        { student_key: c, status: 'bogus' },
        { student_key: d, status: 'enrolled' },
        { student_key: d.toLowerCase(), status: 'enrolled' },
      ],
      requested_by: 'registrar:batch',
    };
    const first = await t.run<WriteResult>('enrollments', 'write-program-enrollments', data, { jobId: 'reg-batch-1' });
    expect(first.state, first.failedReason).toBe('completed');
    expect(first.result.results).toEqual({
      [a]: 'enrolled',
      [b]: 'pending',
      [c]: 'invalid-status',
      [d]: 'duplicated',
      [d.toLowerCase()]: 'duplicated',
    });
    await first.job.remove();
    expect(await t.queues.enrollments.getJob('reg-batch-1')).toBeUndefined();

    // Meanwhile another job changes a learner the batch wrote.
    expect(
      (await enrollOk(t, P.program_uuid, [{ student_key: a, status: 'canceled' }], { action: 'update' })).results,
    ).toEqual({ [a]: 'canceled' });
    const before = await dbState(t);
    const rowsOfBatch = await historyCountOfJob('reg-batch-1');
    expect(rowsOfBatch).toBe(2);

    const second = await t.run<WriteResult>('enrollments', 'write-program-enrollments', data, { jobId: 'reg-batch-1' });
    expect(second.state, second.failedReason).toBe('completed');
    expect(second.result).toEqual(first.result);
    expect((await peOf(t, P.program_uuid, a))!.status).toBe('canceled');
    expect((await peOf(t, P.program_uuid, b))!.status).toBe('pending');
    expect(await dbState(t)).toEqual(before);
    expect(await historyCountOfJob('reg-batch-1')).toBe(rowsOfBatch);
  });

  it('a course write re-added after removal returns the first result and neither re-activates the PCE nor re-grants the role', async () => {
    const key = uniqueKey();
    const acc = await announceLearner(t, key);
    await enrollOk(t, P.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    const data = {
      program_uuid: P.program_uuid,
      course_key: COURSE,
      action: 'create',
      enrollments: [{ student_key: key, status: 'active', course_staff: true }],
    };
    const first = await t.run<WriteResult>('enrollments', 'write-program-course-enrollments', data, {
      jobId: 'reg-course-1',
    });
    expect(first.state, first.failedReason).toBe('completed');
    expect(first.result).toEqual({ code: 200, results: { [key]: 'active' }, counts: { active: 1 } });
    expect(await isCourseStaff(t, acc.user_id, COURSE)).toBe(true);
    await first.job.remove();

    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'inactive', course_staff: false }]);
    expect(await ceOf(t, acc.user_id, COURSE)).toMatchObject({ mode: 'masters', is_active: false });
    const before = await dbState(t);

    const second = await t.run<WriteResult>('enrollments', 'write-program-course-enrollments', data, {
      jobId: 'reg-course-1',
    });
    expect(second.state, second.failedReason).toBe('completed');
    expect(second.result).toEqual(first.result);
    expect((await pceOf(t, P.program_uuid, key, COURSE))!.status).toBe('inactive');
    expect(await ceOf(t, acc.user_id, COURSE)).toMatchObject({ mode: 'masters', is_active: false });
    expect(await isCourseStaff(t, acc.user_id, COURSE)).toBe(false);
    expect(await dbState(t)).toEqual(before);
  });

  it('a job completed with removeOnComplete: true, re-added under its jobId, returns the first result', async () => {
    const [a, b] = [uniqueKey(), uniqueKey()];
    const data = {
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: [
        { student_key: a, status: 'enrolled' },
        { student_key: b, status: 'ended' },
      ],
    };
    await t.add('enrollments', 'write-program-enrollments', data, { jobId: 'reg-batch-gone', removeOnComplete: true });
    // BullMQ forgets the job as it completes; watch Postgres and the queue instead.
    await waitFor(
      async () => ((await peOf(t, P.program_uuid, b)) ? true : undefined),
      60_000,
      'the batch to be applied',
    );
    await waitFor(
      async () => ((await t.queues.enrollments.getJob('reg-batch-gone')) ? undefined : true),
      60_000,
      'BullMQ to remove the job',
    );
    await enrollOk(t, P.program_uuid, [{ student_key: b, status: 'enrolled' }], { action: 'update' });
    const before = await dbState(t);
    const again = await t.run<WriteResult>('enrollments', 'write-program-enrollments', data, {
      jobId: 'reg-batch-gone',
    });
    expect(again.state, again.failedReason).toBe('completed');
    // Run afresh, action create would answer conflict for both; the first result is the creation.
    expect(again.result).toEqual({
      code: 200,
      results: { [a]: 'enrolled', [b]: 'ended' },
      counts: { enrolled: 1, ended: 1 },
    });
    expect((await peOf(t, P.program_uuid, b))!.status).toBe('enrolled');
    expect(await dbState(t)).toEqual(before);
  });

  it('a re-submitted job of more than 1,000 records still ends with progress done == total', async () => {
    const records = Array.from({ length: 1_500 }, () => ({ student_key: uniqueKey('prog'), status: 'enrolled' }));
    const data = { program_uuid: P.program_uuid, action: 'create', enrollments: records };
    const first = await t.run<WriteResult>('enrollments', 'write-program-enrollments', data, {
      jobId: 'reg-batch-progress',
    });
    expect(first.job.progress).toEqual({ done: 1_500, total: 1_500 });
    await first.job.remove();
    const second = await t.run<WriteResult>('enrollments', 'write-program-enrollments', data, {
      jobId: 'reg-batch-progress',
    });
    expect(second.result).toEqual(first.result);
    expect(second.job.progress).toEqual({ done: 1_500, total: 1_500 });
  });

  it('while the first is still known to BullMQ, the same jobId adds nothing and runs nothing', async () => {
    const k = uniqueKey();
    const data = {
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: [{ student_key: k, status: 'enrolled' }],
    };
    const first = await t.run<WriteResult>('enrollments', 'write-program-enrollments', data, {
      jobId: 'reg-batch-kept',
    });
    const before = await dbState(t);
    const dup = await t.add('enrollments', 'write-program-enrollments', data, { jobId: 'reg-batch-kept' });
    expect(dup.id).toBe('reg-batch-kept');
    const seen = await t.wait<WriteResult>(dup);
    expect(seen.result).toEqual(first.result);
    expect(seen.job.finishedOn).toBe(first.job.finishedOn);
    expect(await dbState(t)).toEqual(before);
  });

  it("another jobId with the same payload is another job: it runs and sees the first one's effects", async () => {
    const k = uniqueKey();
    const data = {
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: [{ student_key: k, status: 'enrolled' }],
    };
    const first = await t.run<WriteResult>('enrollments', 'write-program-enrollments', data, { jobId: 'reg-batch-a' });
    const second = await t.run<WriteResult>('enrollments', 'write-program-enrollments', data, { jobId: 'reg-batch-b' });
    expect(first.result.results).toEqual({ [k]: 'enrolled' });
    expect(second.result.results).toEqual({ [k]: 'conflict' });
    // And jobs without a jobId are never mistaken for each other either.
    const third = await enroll(t, P.program_uuid, [{ student_key: k, status: 'pending' }], { action: 'update' });
    const fourth = await enroll(t, P.program_uuid, [{ student_key: k, status: 'ended' }], { action: 'update' });
    expect([third.result.results[k], fourth.result.results[k]]).toEqual(['pending', 'ended']);
    expect((await peOf(t, P.program_uuid, k))!.status).toBe('ended');
  });
});

// ---------------------------------------------------------------------------------------------
// A bulk job killed half way and run again.

const TOTAL = 10_000;

/** A spelling that differs from the key, its upper case and its lower case. */
const capitalized = (k: string) => k.charAt(0).toUpperCase() + k.slice(1).toLowerCase();

/** 10,000 records over 20 chunks of 500, with every kind of result, duplicates across chunks. */
function bulkProgramRecords(prefix: string) {
  const statuses = ['enrolled', 'pending', 'suspended', 'canceled', 'ended'];
  const records: { student_key: string; status: string }[] = [];
  for (let i = 0; i < TOTAL - 10; i++) {
    const key = `${prefix}-${i}`;
    records.push({
      student_key: i % 7 === 0 ? key.toUpperCase() : key,
      status: i % 997 === 0 ? 'bogus' : statuses[i % 5]!,
    });
  }
  // The last chunk repeats keys of the first one, in another case: duplicated, in both chunks.
  for (let i = 5; i < 15; i++) records.push({ student_key: capitalized(`${prefix}-${i}`), status: 'enrolled' });
  return records;
}

/**
 * Adds the job on a queue prefix of its own, served by a child process that is SIGKILLed once the
 * job has reported progress past `killAfter` records; then an in-process service on the same
 * prefix and database recovers the stalled job and finishes it.
 */
async function runKilledHalfWay(
  name: string,
  data: unknown,
  killAfter: number,
  committed: () => Promise<number>,
): Promise<{ done: FinishedJob<WriteResult>; doneAtKill: number; committedAtKill: number }> {
  const prefix = newPrefix();
  const producer = await queuesOn(prefix);
  const child = spawnServiceProcess(t, prefix, { WRITE_CHUNK_SIZE: '500', WORKER_CONCURRENCY: '1' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let recovering: Awaited<ReturnType<typeof startServiceOn>> | undefined;
  try {
    const job = await producer.queues.enrollments.add(name, data);
    const queue: Queue = producer.queues.enrollments;
    const doneAtKill = await waitFor(
      async () => {
        const fresh = await Job.fromId(queue, job.id!);
        const state = await job.getState();
        if (state === 'completed' || state === 'failed') throw new Error(`the job ${state} before it could be killed`);
        const p = fresh?.progress as { done?: number; total?: number } | undefined;
        if (p && typeof p.done === 'number' && p.done >= killAfter) {
          child.kill('SIGKILL');
          return p.done;
        }
        return undefined;
      },
      120_000,
      'the job to make progress in the child process',
      5,
    );
    await exited;
    const committedAtKill = await committed();
    expect(await job.getState()).toBe('active');
    const p = (await Job.fromId(queue, job.id!))!.progress as { done: number; total: number };
    expect(p.done).toBeLessThan(p.total);
    recovering = await startServiceOn(t, prefix, { WRITE_CHUNK_SIZE: '500' });
    // BullMQ's stalled-job check hands the job to the new process once the dead one's lock expires.
    const done = await waitJob<WriteResult>(queue, job, 240_000);
    return { done, doneAtKill, committedAtKill };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await recovering?.stop();
    await producer.close();
  }
}

/** Per learner (lower-cased key): PE and PCE history as (entity, action, changes), ids and catalog names normalized. */
async function normalizedHistory(programUuid: string, names: Record<string, string>): Promise<Map<string, string>> {
  const rows = await t.sql`
    select lower(pe.student_key) as k, h.entity, h.action, h.changes, h.requested_by
    from history h join program_enrollments pe on pe.id = h.program_enrollment_id
    where pe.program_uuid = ${programUuid} order by h.id`;
  const byKey = new Map<string, string[]>();
  for (const r of rows) {
    const changes = Object.fromEntries(
      Object.entries(r.changes as Record<string, [unknown, unknown]>).map(([field, pair]) => [
        field,
        pair.map((v) =>
          typeof v === 'string' && v in names ? names[v] : field === 'course_enrollment_id' && v !== null ? 'CE' : v,
        ),
      ]),
    );
    const line = JSON.stringify([r.entity, r.action, changes, r.requested_by]);
    byKey.set(r.k, [...(byKey.get(r.k) ?? []), line]);
  }
  return new Map([...byKey].map(([k, v]) => [k, v.join('\n')]));
}

describe('a bulk program write killed half way and run again', () => {
  it('returns the same results as a clean run of the same payload, with no duplicate rows or history', {
    timeout: 400_000,
  }, async () => {
    const R = await newProgram(t); // the reference twin
    const X = await newProgram(t); // the interrupted one
    const prefix = uniqueKey('bulk');
    const records = bulkProgramRecords(prefix);
    // Learners 0-399 already exist (pending) in both programs; 400-499 have accounts.
    for (const program of [R, X]) {
      await enrollOk(
        t,
        program.program_uuid,
        records.slice(0, 400).map((r) => ({ student_key: r.student_key, status: 'pending' })),
      );
    }
    for (let i = 400; i < 500; i += 25) {
      await Promise.all(records.slice(i, i + 25).map((r) => announceLearner(t, r.student_key)));
    }

    const data = (p: ProgramPayload) => ({
      program_uuid: p.program_uuid,
      action: 'create',
      enrollments: records,
      requested_by: 'registrar:bulk',
    });
    const reference = await t
      .run<WriteResult>('enrollments', 'write-program-enrollments', data(R), {})
      .then((d) => (expect(d.state, d.failedReason).toBe('completed'), d));
    expect(Object.keys(reference.result.results)).toHaveLength(TOTAL);
    expect(reference.result.counts['duplicated']).toBe(20);
    expect(reference.result.counts['invalid-status']).toBe(11);
    // Learners 0-399 existed: conflict, but for learner 0 (invalid status) and 5-14 (duplicated).
    expect(reference.result.counts['conflict']).toBe(389);

    const historyOfX = async () =>
      Number(
        (
          await t.sql`select count(*) as n from history h join program_enrollments pe on pe.id = h.program_enrollment_id where pe.program_uuid = ${X.program_uuid}`
        )[0]!.n,
      );
    const { done, doneAtKill, committedAtKill } = await runKilledHalfWay(
      'write-program-enrollments',
      data(X),
      2_500,
      historyOfX,
    );
    console.log(
      `program bulk: killed after ${doneAtKill} of ${TOTAL} records reported, ${committedAtKill} history rows committed; the recovered run was attempt ${done.job.attemptsStarted}`,
    );
    expect(done.state, done.failedReason).toBe('completed');
    expect(done.result).toEqual(reference.result);
    expect(done.job.progress).toEqual({ done: TOTAL, total: TOTAL });

    const peState = async (p: ProgramPayload) =>
      (
        await t.sql`select lower(student_key) as k, student_key, status, user_id from program_enrollments where program_uuid = ${p.program_uuid} order by 1`
      ).map((r) => ({ ...r }));
    const xState = await peState(X);
    expect(xState).toEqual(await peState(R));
    // 9,990 distinct learners, less the 10 new ones whose status was invalid.
    expect(xState).toHaveLength(9_980);
    const names = { [R.curricula[0]!.curriculum_uuid]: 'CURRICULUM', [X.curricula[0]!.curriculum_uuid]: 'CURRICULUM' };
    const xHistory = await normalizedHistory(X.program_uuid, names);
    expect(xHistory).toEqual(await normalizedHistory(R.program_uuid, names));
    // No learner has two "created" rows.
    const [{ n }] = (await t.sql`
      select count(*)::int as n from (
        select entity_id from history where entity = 'program_enrollment' and action = 'created' group by entity_id having count(*) > 1) x`) as any;
    expect(n).toBe(0);
    await expectHistoryReplaysToState(t);
  });
});

describe('a bulk course write killed half way and run again', () => {
  it('returns the same results as a clean run of the same payload, with no duplicate rows, CEs, roles or history', {
    timeout: 400_000,
  }, async () => {
    // Twin programs with twin courses, so that the twins' learners never compete for a seat.
    const C1 = 'course-v1:UoX+TWIN1+2026';
    const C2 = 'course-v1:UoX+TWIN2+2026';
    const R = await newProgram(t, {
      courses: [{ course_key: C1, external_course_key: 'TWIN', modes: ['audit', 'masters', 'verified'] }],
    });
    const X = await newProgram(t, {
      courses: [{ course_key: C2, external_course_key: 'TWIN', modes: ['audit', 'masters', 'verified'] }],
    });
    const prefix = uniqueKey('cbulk');
    const keys = Array.from({ length: TOTAL - 60 }, (_, i) => `${prefix}-${i}`);
    // 200 learners have accounts (some with a verified or audit CE in both courses), then PEs in both programs.
    const accounts: number[] = [];
    for (let i = 0; i < 200; i += 25) {
      const batch = await Promise.all(
        keys.slice(i, i + 25).map((k) => announceAccount(t, [{ organization_key: ORG, external_user_key: k }])),
      );
      accounts.push(...batch.map((a) => a.user_id));
    }
    for (let i = 0; i < 200; i += 5) {
      const mode = i % 10 === 0 ? 'verified' : 'audit';
      for (const course_key of [C1, C2])
        await courseEnrollmentChanged(t, { user_id: accounts[i]!, course_key, mode, is_active: i % 20 !== 15 });
    }
    for (const program of [R, X]) {
      await enrollOk(
        t,
        program.program_uuid,
        keys.slice(0, TOTAL - 100).map((k) => ({ student_key: k, status: 'enrolled' })),
      );
      // 300 learners already have a PCE (active) in the program's course.
      await enrollCourseOk(
        t,
        program.program_uuid,
        'TWIN',
        keys.slice(100, 400).map((k) => ({ student_key: k, status: 'active', course_staff: true })),
      );
    }
    const records: { student_key: string; status: string; course_staff?: boolean }[] = keys.map((k, i) => ({
      student_key: i % 9 === 0 ? k.toUpperCase() : k,
      status: i % 997 === 0 ? 'enrolled' : i % 3 === 0 ? 'inactive' : 'active',
      ...(i % 11 === 0 ? { course_staff: true } : i % 13 === 0 ? { course_staff: false } : {}),
    }));
    for (let i = 0; i < 30; i++) records.push({ student_key: capitalized(`${prefix}-${i + 1000}`), status: 'active' }); // duplicated across chunks
    for (let i = 0; i < 30; i++) records.push({ student_key: `${prefix}-nope-${i}`, status: 'active' }); // not-in-program

    const data = { course_key: 'TWIN', action: 'create', enrollments: records };
    const reference = await t.run<WriteResult>('enrollments', 'write-program-course-enrollments', {
      ...data,
      program_uuid: R.program_uuid,
    });
    expect(reference.state, reference.failedReason).toBe('completed');
    expect(Object.keys(reference.result.results)).toHaveLength(TOTAL);
    expect(reference.result.counts['duplicated']).toBe(60);
    expect(reference.result.counts['not-in-program']).toBe(30 + 40);
    expect(reference.result.counts['conflict']).toBe(300); // learners 100-399 had a PCE

    const pcesOfX = async () =>
      Number(
        (
          await t.sql`select count(*) as n from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id where pe.program_uuid = ${X.program_uuid}`
        )[0]!.n,
      );
    const { done, doneAtKill, committedAtKill } = await runKilledHalfWay(
      'write-program-course-enrollments',
      { ...data, program_uuid: X.program_uuid },
      2_500,
      pcesOfX,
    );
    console.log(
      `course bulk: killed after ${doneAtKill} of ${TOTAL} records reported, ${committedAtKill} PCEs committed; the recovered run was attempt ${done.job.attemptsStarted}`,
    );
    expect(done.state, done.failedReason).toBe('completed');
    expect(done.result).toEqual(reference.result);
    expect(done.job.progress).toEqual({ done: TOTAL, total: TOTAL });

    const pceState = async (p: ProgramPayload) =>
      (
        await t.sql`
        select lower(pe.student_key) as k, pce.status, pce.course_enrollment_id is not null as realized,
               ce.mode, ce.is_active, ce.user_id,
               exists (select 1 from pending_role_assignments pra where pra.program_course_enrollment_id = pce.id) as pending_staff,
               exists (select 1 from course_staff_roles csr where csr.user_id = pe.user_id and csr.course_key = pce.course_key) as staff
        from program_course_enrollments pce
        join program_enrollments pe on pe.id = pce.program_enrollment_id
        left join course_enrollments ce on ce.id = pce.course_enrollment_id
        where pe.program_uuid = ${p.program_uuid} order by 1`
      ).map((r) => ({ ...r }));
    const xState = await pceState(X);
    expect(xState).toEqual(await pceState(R));
    const [counts] = await t.sql`
      select (select count(*) from course_enrollments where course_key = ${C1})::int as ce1,
             (select count(*) from course_enrollments where course_key = ${C2})::int as ce2,
             (select count(*) from course_staff_roles where course_key = ${C1})::int as staff1,
             (select count(*) from course_staff_roles where course_key = ${C2})::int as staff2,
             (select count(*) from history h join course_enrollments ce on ce.id = h.entity_id
               where h.entity = 'course_enrollment' and ce.course_key = ${C1})::int as cehist1,
             (select count(*) from history h join course_enrollments ce on ce.id = h.entity_id
               where h.entity = 'course_enrollment' and ce.course_key = ${C2})::int as cehist2`;
    expect(counts!.ce2).toBe(counts!.ce1);
    // Each of the 200 accounts has one CE per course: learners 1-199 from their PCE, learner 0
    // (whose status was invalid) from its LMS event.
    expect(counts!.ce1).toBe(200);
    expect(counts!.staff2).toBe(counts!.staff1);
    expect(counts!.cehist2).toBe(counts!.cehist1);
    const names = {
      [R.curricula[0]!.curriculum_uuid]: 'CURRICULUM',
      [X.curricula[0]!.curriculum_uuid]: 'CURRICULUM',
      [C1]: 'COURSE',
      [C2]: 'COURSE',
    };
    expect(await normalizedHistory(X.program_uuid, names)).toEqual(await normalizedHistory(R.program_uuid, names));
    await expectHistoryReplaysToState(t);
  });
});
