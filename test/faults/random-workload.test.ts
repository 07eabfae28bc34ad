/**
 * Three processes with LEARNER_LOCKS=off (Postgres alone keeps the rules), 2,000 random jobs on 50
 * learners: program and course writes across three programs that share courses, account events
 * (some replayed), explicit links and expiry. Once clean, once with two of the processes killed
 * mid-run. Every job completes once, a learner holds at most one active seat per course, every
 * PCE of a linked enrollment has its CE, the history replays to the rows (no duplicate), and the
 * rows and every job's result equal a sequential model of docs/rules.md (test/faults/model/) fed
 * the jobs in the order their transactions committed (`commit_order`, src/db/job-ledger.ts).
 */
import { randomUUID } from 'node:crypto';
import { Job, type Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedUnits } from '../../src/db/job-ledger.js';
import {
  accountCreatedPayload,
  expectHistoryReplaysToState,
  learnersWithTwoActiveSeats,
  newAccount,
  newCourseKey,
  newProgram,
  ORG,
  uniqueKey,
} from '../support/fixtures.js';
import {
  type AccountCreated,
  accountCreated,
  type CourseWrite,
  emptyState,
  expireWaiting,
  linkProgramEnrollment,
  type ModelState,
  type ProgramWrite,
  type StateLines,
  stateLines,
  writeProgramCourseEnrollments,
  writeProgramEnrollments,
} from './model/rules-model.js';
import {
  measureResume,
  openWorld,
  type PrivateRedis,
  report,
  type ServiceProcess,
  spawnServices,
  startRedis,
  type World,
  waitUntil,
} from './support.js';

const JOBS = 2_000;
const LEARNERS = 50;
const PROGRAM_STATUSES = ['enrolled', 'pending', 'suspended', 'canceled', 'ended'];

/** A small seeded generator (mulberry32), so that a failing run can be replayed. */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const some = <T>(xs: readonly T[], max: number): T[] => {
    const out = new Set<T>();
    const n = 1 + int(max);
    while (out.size < n) out.add(pick(xs));
    return [...out];
  };
  return { next, int, pick, some };
}

type QueueName = 'enrollments' | 'accounts';

/** One job of the workload, with the ledger rows (`key`, chunk start) its transactions commit. */
interface PlannedJob {
  queue: QueueName;
  name: string;
  jobId: string;
  data: any;
  /** The ledger key and chunk start (null: the job's result row) of each transaction that applies it. */
  units: Array<{ key: string; start: number | null }>;
}

const unitId = (u: { key: string; start: number | null }) => `${u.key}#${u.start ?? 'result'}`;

/**
 * Replays the committed transactions in commit order through the model; returns each job's
 * expected result, and the transactions that never committed (jobs not applied).
 */
function replay(
  model: ModelState,
  jobs: readonly PlannedJob[],
  seqOf: Map<string, number>,
): { expected: Map<string, unknown>; unapplied: string[] } {
  const steps = new Map<string, { seq: number; job: PlannedJob; part: number }>();
  const unapplied: string[] = [];
  for (const job of jobs)
    job.units.forEach((u, part) => {
      const seq = seqOf.get(unitId(u));
      if (seq === undefined) unapplied.push(`${job.jobId} ${unitId(u)}`);
      // A replayed account event shares its first run's ledger row: it is applied once.
      else if (!steps.has(unitId(u))) steps.set(unitId(u), { seq, job, part });
    });
  const byUnit = new Map<string, unknown>();
  const linkErrors = new Map<string, Record<string, string>>();
  for (const [id, { job, part }] of [...steps].sort((a, b) => a[1].seq - b[1].seq)) {
    if (job.name === 'write-program-enrollments')
      byUnit.set(id, writeProgramEnrollments(model, job.data as ProgramWrite));
    else if (job.name === 'write-program-course-enrollments')
      byUnit.set(id, writeProgramCourseEnrollments(model, job.data as CourseWrite));
    else if (job.name === 'account-created') byUnit.set(id, accountCreated(model, job.data as AccountCreated));
    else if (job.name === 'expire-waiting-enrollments') byUnit.set(id, expireWaiting(model));
    else {
      const { student_key, username } = job.data.links[part];
      const error = linkProgramEnrollment(model, job.data.program_uuid, student_key, username);
      const errors = linkErrors.get(job.jobId) ?? {};
      if (error !== null) errors[student_key] = error;
      linkErrors.set(job.jobId, errors);
    }
  }
  const expected = new Map<string, unknown>();
  for (const job of jobs) {
    if (job.name === 'link-program-enrollments') expected.set(job.jobId, { errors: linkErrors.get(job.jobId) ?? {} });
    else expected.set(job.jobId, byUnit.get(unitId(job.units[0]!)));
  }
  return { expected, unapplied };
}

/** The service's rows as the model's lines (test/faults/model/rules-model.ts `stateLines`). */
async function serviceLines(world: World): Promise<StateLines> {
  const lines = async (q: Promise<Array<{ line: string }>>) => (await q).map((r) => r.line).sort(byCodePoint);
  const { sql } = world;
  return {
    pes: await lines(sql`
      select program_uuid || '|' || student_key_lower || '|' || status || '|' || coalesce(user_id::text, '-') as line
      from program_enrollments`),
    pces: await lines(sql`
      select pe.program_uuid || '|' || pe.student_key_lower || '|' || pce.course_key || '|' || pce.status || '|'
             || coalesce(ce.user_id::text, '-') as line
      from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id
      left join course_enrollments ce on ce.id = pce.course_enrollment_id`),
    ces: await lines(
      sql`select user_id || '|' || course_key || '|' || mode || '|' || is_active as line from course_enrollments`,
    ),
    staff: await lines(sql`select user_id || '|' || course_key as line from course_staff_roles`),
    pending: await lines(sql`
      select pe.program_uuid || '|' || pe.student_key_lower || '|' || pce.course_key as line
      from pending_role_assignments r join program_course_enrollments pce on pce.id = r.program_course_enrollment_id
      join program_enrollments pe on pe.id = pce.program_enrollment_id`),
    learners: await lines(sql`
      select organization_key || '|' || student_key_lower || '|' || user_id as line from learners where user_id is not null`),
  };
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Counts of finished jobs on both queues. */
async function finished(queues: Queue[]): Promise<number> {
  let n = 0;
  for (const q of queues) {
    const c = await q.getJobCounts('completed', 'failed');
    n += (c.completed ?? 0) + (c.failed ?? 0);
  }
  return n;
}

/** The state and result of every job, read 200 at a time. */
async function outcomes(world: World, jobs: readonly PlannedJob[]) {
  const out = new Map<string, { state: string; result: unknown; failedReason?: string }>();
  for (let i = 0; i < jobs.length; i += 200) {
    await Promise.all(
      jobs.slice(i, i + 200).map(async (j) => {
        const job = await Job.fromId(world.queues[j.queue], j.jobId);
        const state = job ? await job.getState() : 'missing';
        out.set(j.jobId, { state, result: job?.returnvalue, failedReason: job?.failedReason });
      }),
    );
  }
  return out;
}

describe.each([
  { variant: 'clean', kills: 0, seed: 8_001 },
  { variant: 'two processes killed', kills: 2, seed: 8_002 },
])('random workload, locks off, three processes ($variant)', ({ variant, kills, seed }) => {
  let redis: PrivateRedis;
  let producer: Redis;
  let world: World;
  const processes: ServiceProcess[] = [];
  const serviceEnv = () => world.env({ LEARNER_LOCKS: 'off', WORKER_CONCURRENCY: '4' });

  beforeAll(async () => {
    redis = await startRedis();
    producer = new Redis(redis.url, { maxRetriesPerRequest: null });
    world = await openWorld({ REDIS_URL: redis.url }, producer);
    await spawnServices(3, serviceEnv(), processes);
  });
  afterAll(async () => {
    for (const p of processes) await p.kill('SIGTERM');
    await world?.close();
    producer?.disconnect();
    await redis?.destroy();
  });

  it('keeps every rule, runs every job once and equals the sequential model', async () => {
    const started = Date.now();
    const rnd = random(seed);
    const courses = [newCourseKey(ORG, 'S1'), newCourseKey(ORG, 'S2'), newCourseKey(ORG, 'S3')];
    const programs = [
      await newProgram(world.t, { courses: [courses[0]!, courses[1]!] }),
      await newProgram(world.t, { courses: [courses[1]!, courses[2]!] }),
      await newProgram(world.t, { courses: [courses[0]!, courses[2]!] }),
    ];
    const model = emptyState(
      programs.map((p) => ({
        program_uuid: p.program_uuid,
        organization_key: p.organization_key,
        // Bare course keys get the contract's default modes.
        courses: new Map(p.courses.map((c) => [c.course_key, c.modes ?? ['audit', 'masters']])),
      })),
    );
    const learners = Array.from({ length: LEARNERS }, () => ({ key: uniqueKey('rw'), account: newAccount('rw') }));
    const announced: Array<{ event_id: string; learner: (typeof learners)[number] }> = [];

    const jobs: PlannedJob[] = [];
    for (let i = 0; i < JOBS; i++) {
      const jobId = `rw-${seed}-${i}`;
      const key = `enrollments/${jobId}`;
      const roll = rnd.next();
      const program = rnd.pick(programs);
      if (roll < 0.35) {
        jobs.push({
          queue: 'enrollments',
          name: 'write-program-enrollments',
          jobId,
          units: [{ key, start: 0 }],
          data: {
            program_uuid: program.program_uuid,
            action: 'create_or_update',
            enrollments: rnd.some(learners, 3).map((l) => ({ student_key: l.key, status: rnd.pick(PROGRAM_STATUSES) })),
          },
        });
      } else if (roll < 0.7) {
        const course = rnd.pick(program.courses).course_key;
        jobs.push({
          queue: 'enrollments',
          name: 'write-program-course-enrollments',
          jobId,
          units: [{ key, start: 0 }],
          data: {
            program_uuid: program.program_uuid,
            course_key: course,
            action: 'create_or_update',
            enrollments: rnd.some(learners, 3).map((l) => ({
              student_key: l.key,
              status: rnd.next() < 0.6 ? 'active' : 'inactive',
              ...(rnd.next() < 0.2 ? { course_staff: rnd.next() < 0.5 } : {}),
            })),
          },
        });
      } else if (roll < 0.85) {
        // An account event, or the replay of an earlier one.
        const replayed = announced.length > 0 && rnd.next() < 0.25 ? rnd.pick(announced) : undefined;
        const learner = replayed?.learner ?? rnd.pick(learners);
        const event_id = replayed?.event_id ?? `rw-${seed}-event-${i}-${randomUUID()}`;
        if (!replayed) announced.push({ event_id, learner });
        jobs.push({
          queue: 'accounts',
          name: 'account-created',
          jobId,
          units: [{ key: `account-created/${event_id}`, start: null }],
          data: accountCreatedPayload(
            learner.account,
            [{ organization_key: ORG, external_user_key: learner.key }],
            event_id,
          ),
        });
      } else if (roll < 0.99) {
        const links = rnd.some(learners, 2).map((l) => ({
          student_key: l.key,
          username: rnd.next() < 0.8 ? l.account.username : rnd.pick(learners).account.username,
        }));
        jobs.push({
          queue: 'enrollments',
          name: 'link-program-enrollments',
          jobId,
          // Each link is its own transaction (docs/contract.md "link-program-enrollments").
          units: links.map((_, start) => ({ key, start })),
          data: { program_uuid: program.program_uuid, links },
        });
      } else {
        jobs.push({
          queue: 'enrollments',
          name: 'expire-waiting-enrollments',
          jobId,
          units: [{ key, start: null }],
          data: { expiration_days: 0 },
        });
      }
    }

    for (let i = 0; i < jobs.length; i += 100) {
      for (const queue of ['enrollments', 'accounts'] as const) {
        const batch = jobs.slice(i, i + 100).filter((j) => j.queue === queue);
        if (batch.length === 0) continue;
        await world.queues[queue].addBulk(batch.map((j) => ({ name: j.name, data: j.data, opts: { jobId: j.jobId } })));
      }
    }
    const queues = Object.values(world.queues);

    const resumes: number[] = [];
    const replacements: Promise<void>[] = [];
    for (let k = 0; k < kills; k++) {
      await waitUntil(
        async () => (await finished(queues)) >= (JOBS * (k + 1)) / (kills + 2),
        300_000,
        'part of the workload done',
      );
      const victim = processes[k]!;
      resumes.push(await measureResume(queues, victim, () => victim.kill('SIGKILL')));
      // A fresh process takes the killed one's place, as the supervisor would restart it, while
      // the workload runs on (starting one takes seconds to minutes on a busy machine).
      replacements.push(spawnServices(1, serviceEnv(), processes));
    }
    await Promise.all(replacements);

    // Every job ends (completed or failed) or the deadline says it was lost.
    await waitUntil(async () => (await finished(queues)) >= JOBS, 600_000, 'every job finished').catch(() => {});
    const ran = Date.now();
    const states = await outcomes(world, jobs);
    const failures = jobs.flatMap((j) =>
      states.get(j.jobId)!.state === 'failed' ? [`${j.jobId}: ${states.get(j.jobId)!.failedReason}`] : [],
    );
    const lost = jobs.filter((j) => !['completed', 'failed'].includes(states.get(j.jobId)!.state)).length;

    // The invariants, whatever the model says.
    const seats = await learnersWithTwoActiveSeats(world.t);
    const [{ withoutCe, createdTwice }] = (await world.sql`
      select
        (select count(*)::int from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id
          where pe.user_id is not null and pce.course_enrollment_id is null) as "withoutCe",
        (select count(*)::int from (select entity, entity_id from history where action = 'created'
          group by 1, 2 having count(*) > 1) x) as "createdTwice"`) as any;
    await expectHistoryReplaysToState(world.t);

    // The sequential model, fed the transactions in the order they committed.
    const seqOf = new Map((await committedUnits(world.sql)).map((u) => [unitId(u), u.commitSeq]));
    const { expected, unapplied } = replay(model, jobs, seqOf);
    const wrongResults = jobs.flatMap((j) => {
      const got = states.get(j.jobId)!;
      if (got.state !== 'completed') return [];
      const want = expected.get(j.jobId);
      return JSON.stringify(canonical(got.result)) === JSON.stringify(canonical(want))
        ? []
        : [{ seq: seqOf.get(unitId(j.units[0]!)), job: j.jobId, name: j.name, data: j.data, got: got.result, want }];
    });
    // The first disagreement in commit order is the one that explains the others.
    wrongResults.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    const service = await serviceLines(world);
    const modelLines = stateLines(model);
    const stateDiffs = Object.fromEntries(
      (Object.keys(modelLines) as Array<keyof StateLines>).flatMap((k) => {
        const onlyService = service[k].filter((l) => !modelLines[k].includes(l));
        const onlyModel = modelLines[k].filter((l) => !service[k].includes(l));
        return onlyService.length || onlyModel.length ? [[k, { onlyService, onlyModel }]] : [];
      }),
    );
    const modelDisagreements = wrongResults.length + Object.keys(stateDiffs).length;

    report({
      scenario: `random workload, locks off (${variant})`,
      killed: kills,
      jobs: JOBS,
      lost,
      duplicated: createdTwice,
      violations: seats + withoutCe + failures.length + unapplied.length + modelDisagreements,
      ...(kills ? { resume_s: resumes } : {}),
    });
    console.log(
      `random workload (${variant}): ${JOBS} jobs ran in ${((ran - started) / 1000).toFixed(1)} s, checked in ${((Date.now() - ran) / 1000).toFixed(1)} s; ${seqOf.size} ledger rows in commit order`,
    );
    expect(failures).toEqual([]);
    expect(lost).toBe(0);
    expect({ seats, withoutCe, createdTwice }).toEqual({ seats: 0, withoutCe: 0, createdTwice: 0 });
    expect(unapplied).toEqual([]);
    expect({ wrongResults: wrongResults.slice(0, 3), stateDiffs }).toEqual({ wrongResults: [], stateDiffs: {} });
    for (const r of resumes) expect(r).toBeLessThan(10);
  });
});

/** JSON with object keys sorted, so that results compare whatever order their keys were written in. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  return v;
}
