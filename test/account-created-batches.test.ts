/**
 * account-created applied several events at a time (src/jobs/account-created.ts): the events a
 * process runs at once go in the statements of one transaction. The same events, added at once to
 * a service that runs one job at a time and to one that runs sixteen, give the same results and
 * the same rows, history (each row stamped with the job of its account's event) and outbox events;
 * duplicates of one event_id, two events of one user_id, a username taken by another account and a
 * pending staff role included. docs/rules.md rules 6, 8, 9, 12, 13; contract "account-created".
 */
import { randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';
import { LearnerCourseLocks } from '../src/lock/learner-course-locks.js';
import { outboxRows } from './support/event-bus.js';
import {
  type Account,
  type AccountCreatedResult,
  accountCreatedPayload,
  completed,
  type Identity,
  newAccount,
  newCourseKey,
  newOrg,
  programPayload,
  upsertProgram,
  writeCourseEnrollments,
  writeEnrollments,
} from './support/fixtures.js';
import { type TestService, useTestService } from './support/service.js';

const oneAtATime = useTestService({ ACCOUNTS_CONCURRENCY: '1' });
const together = useTestService({ ACCOUNTS_CONCURRENCY: '16' });

const org = newOrg();
const [c1, c2, c3] = [newCourseKey(org), newCourseKey(org), newCourseKey(org)];
const programP = programPayload({ org, courses: [c1, c2] });
const programQ = programPayload({ org, courses: [c3] });
const keys = Array.from({ length: 24 }, (_, i) => `batch-learner-${i}`);
const [staffKey, rejectedKey, firstOfUser, secondOfUser] = ['staff-learner', 'taken-learner', 'user-p', 'user-q'];

const owner = newAccount('owner');
const identity = (key: string): Identity => ({ organization_key: org, external_user_key: key });

/** Every event, in the order added; the same ids and payloads for both services. */
function theEvents(): Array<{ label: string; payload: ReturnType<typeof accountCreatedPayload> }> {
  const events: Array<{ label: string; payload: ReturnType<typeof accountCreatedPayload> }> = [];
  const accounts = new Map<string, Account>();
  const accountOf = (key: string) => {
    if (!accounts.has(key)) accounts.set(key, newAccount('batch'));
    return accounts.get(key)!;
  };
  // One learner's key sent in another case: matched case-insensitively.
  for (const key of keys)
    events.push({
      label: key,
      payload: accountCreatedPayload(accountOf(key), [identity(key === keys[3] ? key.toUpperCase() : key)]),
    });
  const staff = accountCreatedPayload(accountOf(staffKey), [identity(staffKey)]);
  // Three deliveries of one event.
  for (let i = 0; i < 3; i++) events.push({ label: 'staff', payload: staff });
  // Two events of one account, with different identities (PEs of two programs).
  const both = newAccount('both');
  events.push({ label: 'user-first', payload: accountCreatedPayload(both, [identity(firstOfUser)]) });
  events.push({ label: 'user-second', payload: accountCreatedPayload(both, [identity(secondOfUser)]) });
  // A username another account holds.
  const taker = { ...newAccount('taker'), username: owner.username };
  events.push({ label: 'taken', payload: accountCreatedPayload(taker, [identity(rejectedKey)]) });
  return [...events.slice(0, 10), ...events.slice(24).reverse(), ...events.slice(10, 24)];
}

const events = theEvents();

/** The waiting PEs and PCEs the events link, and the account that holds `owner`'s username. */
async function setScene(t: TestService): Promise<void> {
  await upsertProgram(t, programP);
  await upsertProgram(t, programQ);
  await writeEnrollments(t, programP, [...keys, staffKey, rejectedKey, firstOfUser]);
  await writeEnrollments(t, programQ, [secondOfUser]);
  await writeCourseEnrollments(t, programP, c1, [
    ...keys,
    { student_key: staffKey, status: 'active', course_staff: true },
    rejectedKey,
    firstOfUser,
  ]);
  await writeCourseEnrollments(t, programP, c2, [...keys, staffKey, rejectedKey]);
  await writeCourseEnrollments(t, programQ, c3, [secondOfUser]);
  completed(await t.run('accounts', 'account-created', accountCreatedPayload(owner, [])));
}

interface Outcome {
  label: string;
  result?: AccountCreatedResult;
  failed?: string;
}

/** Adds every event while the queue is paused, then lets the workers take them; returns each outcome and job. */
async function deliver(t: TestService): Promise<{ outcomes: Outcome[]; labelOfJob: Map<string, string> }> {
  await t.queues.accounts.pause();
  const jobs: Job[] = [];
  for (const e of events) jobs.push(await t.add('accounts', 'account-created', e.payload));
  await t.queues.accounts.resume();
  const outcomes: Outcome[] = [];
  for (const [i, job] of jobs.entries()) {
    const done = await t.wait<AccountCreatedResult>(job);
    const label = events[i]!.label;
    outcomes.push(done.state === 'completed' ? { label, result: done.result } : { label, failed: done.failedReason });
  }
  return { outcomes, labelOfJob: new Map(jobs.map((j, i) => [String(j.id), events[i]!.label])) };
}

/** What the events wrote, without the ids of either database; history by the event whose job wrote it. */
async function snapshot(t: TestService, labelOfJob: ReadonlyMap<string, string>) {
  const sort = <T>(rows: T[]) => rows.map((r) => JSON.stringify(r)).sort();
  const pes = await t.sql`
    select program_uuid, student_key, user_id::float8 as user_id, status from program_enrollments`;
  const pces = await t.sql`
    select pe.student_key, pce.course_key, pce.status, ce.user_id::float8 as ce_user, ce.course_key as ce_course
    from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id
    left join course_enrollments ce on ce.id = pce.course_enrollment_id`;
  const ces = await t.sql`select user_id::float8 as user_id, course_key, mode, is_active from course_enrollments`;
  const roles = await t.sql`select user_id::float8 as user_id, course_key from course_staff_roles`;
  const pending = await t.sql`
    select pe.student_key, pce.course_key from pending_role_assignments p
    join program_course_enrollments pce on pce.id = p.program_course_enrollment_id
    join program_enrollments pe on pe.id = pce.program_enrollment_id`;
  const accounts = await t.sql`select user_id::float8 as user_id, username, email from accounts`;
  const history = (
    await t.sql<
      Array<{
        job_id: string;
        entity: string;
        action: string;
        course_key: string | null;
        key: string | null;
        changes: Record<string, [unknown, unknown]>;
      }>
    >`
      select h.job_id, h.entity, h.action, h.course_key, pe.student_key as key, h.changes
      from history h left join program_enrollments pe on pe.id = h.program_enrollment_id
      where h.queue = 'accounts'`
  ).map(({ job_id, changes, ...row }) => ({
    ...row,
    event: labelOfJob.get(job_id) ?? `unknown job ${job_id}`,
    // The CE a PCE points at, by whether it has one: its id is the database's own.
    changes:
      'course_enrollment_id' in changes
        ? { course_enrollment_id: changes.course_enrollment_id!.map((v) => v !== null) }
        : changes,
  }));
  const outbox = (await outboxRows(t.sql)).map(
    ({ event_type, user_id, course_key, mode, is_active, org_key, username, email }) => ({
      event_type,
      user_id,
      course_key,
      mode,
      is_active,
      org_key,
      username,
      email,
    }),
  );
  return {
    pes: sort(pes),
    pces: sort(pces),
    ces: sort(ces),
    roles: sort(roles),
    pending: sort(pending),
    accounts: sort(accounts),
    history: sort(history),
    outbox: sort(outbox),
  };
}

/** Transactions of account events, and how many of them applied more than one event (/metrics). */
async function batches(t: TestService): Promise<{ transactions: number; ofOne: number }> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const sample = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 'NaN');
  return {
    transactions: sample('program_enrollments_account_event_batch_size_count'),
    ofOne: sample('program_enrollments_account_event_batch_size_bucket\\{le="1"\\}'),
  };
}

describe('account-created, several events at a time', () => {
  it('gives the results, rows, history and outbox events of the same events applied one at a time', async () => {
    await Promise.all([setScene(oneAtATime), setScene(together)]);
    const alone = await deliver(oneAtATime);
    const batched = await deliver(together);

    // Applied together: some transactions applied more than one event; one at a time, none did.
    const many = await batches(together);
    expect(many.transactions).toBeGreaterThan(many.ofOne);
    const one = await batches(oneAtATime);
    expect(one.transactions).toBe(one.ofOne);

    expect(batched.outcomes).toEqual(alone.outcomes);
    // The outcomes themselves, as the rules have them.
    const outcome = (label: string) => batched.outcomes.filter((o) => o.label === label);
    expect(outcome('taken')).toEqual([
      { label: 'taken', failed: expect.stringMatching(/^username of user_id \d+ already belongs to user_id \d+$/) },
    ]);
    expect(outcome(keys[3]!)[0]!.result).toEqual({
      linked: [{ program_uuid: programP.program_uuid, student_key: keys[3], course_keys: [c1, c2].sort() }],
    });
    const staff = outcome('staff');
    expect(staff).toHaveLength(3);
    for (const o of staff) expect(o).toEqual(staff[0]);
    expect(outcome('user-first')[0]!.result!.linked.map((l) => l.student_key)).toEqual([firstOfUser]);
    expect(outcome('user-second')[0]!.result!.linked.map((l) => l.student_key)).toEqual([secondOfUser]);

    const [a, b] = [await snapshot(oneAtATime, alone.labelOfJob), await snapshot(together, batched.labelOfJob)];
    expect(b).toEqual(a);
    // Every history row of the events names the job of its own event, and each event wrote its rows.
    expect(b.history.filter((h) => h.includes('unknown job'))).toEqual([]);
    const historyOf = (label: string) => b.history.filter((h) => JSON.parse(h).event === label);
    for (const key of keys) expect(historyOf(key).length).toBeGreaterThan(0);
    expect(historyOf('taken')).toEqual([]);
    // The pending role became the staff account's, the taken learner stays waiting.
    expect(b.pending).toEqual([]);
    expect(b.roles).toHaveLength(1);
    expect(b.pes.filter((p) => JSON.parse(p).student_key === rejectedKey).map((p) => JSON.parse(p).user_id)).toEqual([
      null,
    ]);
  });

  it('delays only the event whose learner-course lock another job holds; the others of its batch go on', async () => {
    const program = programPayload({ org, courses: [c1] });
    await upsertProgram(together, program);
    const learners = Array.from({ length: 6 }, (_, i) => `busy-learner-${i}`);
    await writeEnrollments(together, program, learners);
    await writeCourseEnrollments(together, program, c1, learners);
    const redis = new Redis(inject('redisUrl'));
    const held = (await new LearnerCourseLocks(redis, together.prefix, { enabled: true, ttlMs: 60_000 }).acquire([
      { organizationKey: org, studentKeyLower: learners[2]!, courseKey: c1 },
    ]))!;
    try {
      await together.queues.accounts.pause();
      const jobs: Job[] = [];
      for (const key of learners)
        jobs.push(
          await together.add('accounts', 'account-created', accountCreatedPayload(newAccount('busy'), [identity(key)])),
        );
      await together.queues.accounts.resume();
      for (const [i, job] of jobs.entries()) {
        if (i === 2) continue;
        expect(completed(await together.wait<AccountCreatedResult>(job)).linked).toHaveLength(1);
      }
      // Delayed (a busy lock), and nothing of it applied, as long as the lock is held.
      expect(['delayed', 'waiting', 'active']).toContain(await jobs[2]!.getState());
      expect(
        (
          await together.sql`select user_id from program_enrollments where program_uuid = ${program.program_uuid} and student_key = ${learners[2]!}`
        )[0]!.user_id,
      ).toBeNull();
      await held.release();
      expect(completed(await together.wait<AccountCreatedResult>(jobs[2]!)).linked).toEqual([
        { program_uuid: program.program_uuid, student_key: learners[2], course_keys: [c1] },
      ]);
    } finally {
      await held.release();
      await redis.quit();
    }
  });

  it('answers a replayed event with its first result and applies nothing again', async () => {
    const replayed = events.find((e) => e.label === keys[5])!;
    const historyRows = async () => (await together.sql<{ n: number }[]>`select count(*)::int as n from history`)[0]!.n;
    const before = await historyRows();
    const first = await together.sql<{ result: AccountCreatedResult }[]>`
      select result from job_results where key = ${`account-created/${replayed.payload.event_id}`}`;
    const again = await Promise.all(
      [0, 1, 2].map(() => together.run<AccountCreatedResult>('accounts', 'account-created', replayed.payload)),
    );
    for (const done of again) expect(completed(done)).toEqual(first[0]!.result);
    expect(first[0]!.result.linked).toHaveLength(1);
    expect(await historyRows()).toBe(before);
    // A new event of the same account, replayed with it: the new one links nothing new.
    const fresh = { ...replayed.payload, event_id: randomUUID() };
    const [n1, n2] = await Promise.all([
      together.run<AccountCreatedResult>('accounts', 'account-created', fresh),
      together.run<AccountCreatedResult>('accounts', 'account-created', replayed.payload),
    ]);
    expect(completed(n1)).toEqual({ linked: [] });
    expect(completed(n2)).toEqual(first[0]!.result);
  });
});
