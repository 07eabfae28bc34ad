/**
 * Three processes with LEARNER_LOCKS=off (Postgres alone keeps the rules), 2,000 random jobs on 50
 * learners: program and course writes across three programs that share courses, account events
 * (some replayed), explicit links and expiry. Once clean, once with two of the processes killed
 * mid-run. Every job completes once, a learner holds at most one active seat per course, every
 * PCE of a linked enrollment has its CE, and the history replays to the rows (no duplicate).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  measureResume,
  openWorld,
  type PrivateRedis,
  report,
  type ServiceProcess,
  sleep,
  spawnService,
  spawnServices,
  startRedis,
  type World,
  waitAllDone,
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

describe.each([
  { variant: 'clean', kills: 0, seed: 8_001 },
  { variant: 'two processes killed', kills: 2, seed: 8_002 },
])('random workload, locks off, three processes ($variant)', ({ variant, kills, seed }) => {
  let redis: PrivateRedis;
  let producer: Redis;
  let world: World;
  const processes: ServiceProcess[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    producer = new Redis(redis.url, { maxRetriesPerRequest: null });
    world = await openWorld({ REDIS_URL: redis.url }, producer);
    await spawnServices(3, world.env({ LEARNER_LOCKS: 'off', WORKER_CONCURRENCY: '4' }), processes);
  });
  afterAll(async () => {
    for (const p of processes) await p.kill('SIGTERM');
    await world?.close();
    producer?.disconnect();
    await redis?.destroy();
  });

  it('keeps every rule and runs every job once', async () => {
    const rnd = random(seed);
    const courses = [newCourseKey(ORG, 'S1'), newCourseKey(ORG, 'S2'), newCourseKey(ORG, 'S3')];
    const programs = [
      await newProgram(world.t, { courses: [courses[0]!, courses[1]!] }),
      await newProgram(world.t, { courses: [courses[1]!, courses[2]!] }),
      await newProgram(world.t, { courses: [courses[0]!, courses[2]!] }),
    ];
    const learners = Array.from({ length: LEARNERS }, () => ({ key: uniqueKey('rw'), account: newAccount('rw') }));
    const announced: Array<{ event_id: string; learner: (typeof learners)[number] }> = [];

    const jobs: Array<{ queue: 'enrollments' | 'accounts'; name: string; data: unknown }> = [];
    for (let i = 0; i < JOBS; i++) {
      const roll = rnd.next();
      const program = rnd.pick(programs);
      if (roll < 0.35) {
        jobs.push({
          queue: 'enrollments',
          name: 'write-program-enrollments',
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
        const replay = announced.length > 0 && rnd.next() < 0.25 ? rnd.pick(announced) : undefined;
        const learner = replay?.learner ?? rnd.pick(learners);
        const event_id = replay?.event_id ?? randomUUID();
        if (!replay) announced.push({ event_id, learner });
        jobs.push({
          queue: 'accounts',
          name: 'account-created',
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
          data: { program_uuid: program.program_uuid, links },
        });
      } else {
        jobs.push({ queue: 'enrollments', name: 'expire-waiting-enrollments', data: { expiration_days: 0 } });
      }
    }

    const ids: Record<'enrollments' | 'accounts', string[]> = { enrollments: [], accounts: [] };
    for (let i = 0; i < jobs.length; i += 100) {
      for (const queue of ['enrollments', 'accounts'] as const) {
        const batch = jobs.slice(i, i + 100).filter((j) => j.queue === queue);
        if (batch.length === 0) continue;
        const added = await world.queues[queue].addBulk(batch.map((j) => ({ name: j.name, data: j.data })));
        ids[queue].push(...added.map((a) => a.id!));
      }
    }

    const resumes: number[] = [];
    for (let k = 0; k < kills; k++) {
      const done = async () =>
        (await world.queues.enrollments.getCompletedCount()) + (await world.queues.accounts.getCompletedCount());
      await waitUntil(
        async () => (await done()) >= (JOBS * (k + 1)) / (kills + 2) || undefined,
        300_000,
        'part of the workload done',
      );
      const victim = processes[k]!;
      resumes.push(await measureResume(Object.values(world.queues), victim, () => victim.kill('SIGKILL')));
      await sleep(500);
    }
    for (let k = 0; k < kills; k++)
      processes.push(await spawnService(world.env({ LEARNER_LOCKS: 'off', WORKER_CONCURRENCY: '4' })));

    const enrollments = await waitAllDone(world.queues.enrollments, ids.enrollments, 600_000);
    const accounts = await waitAllDone(world.queues.accounts, ids.accounts, 600_000);
    const failed = [...enrollments.failed, ...accounts.failed];
    const failures: string[] = [];
    for (const id of enrollments.failed)
      failures.push(`${id}: ${(await world.queues.enrollments.getJob(id))?.failedReason}`);
    for (const id of accounts.failed) failures.push(`${id}: ${(await world.queues.accounts.getJob(id))?.failedReason}`);
    const lost = enrollments.missing.length + accounts.missing.length;

    const seats = await learnersWithTwoActiveSeats(world.t);
    const [{ withoutCe, createdTwice }] = (await world.sql`
      select
        (select count(*)::int from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id
          where pe.user_id is not null and pce.course_enrollment_id is null) as "withoutCe",
        (select count(*)::int from (select entity, entity_id from history where action = 'created'
          group by 1, 2 having count(*) > 1) x) as "createdTwice"`) as any;
    await expectHistoryReplaysToState(world.t);
    report({
      scenario: `random workload, locks off (${variant})`,
      killed: kills,
      jobs: JOBS,
      lost,
      duplicated: createdTwice,
      violations: seats + withoutCe + failed.length,
      ...(kills ? { resume_s: resumes } : {}),
    });
    expect(failures).toEqual([]);
    expect(lost).toBe(0);
    expect({ seats, withoutCe, createdTwice }).toEqual({ seats: 0, withoutCe: 0, createdTwice: 0 });
    for (const r of resumes) expect(r).toBeLessThan(10);
  });
});
