/**
 * Shared fixtures for the write-engine tests. Everything here speaks the wire contract
 * (CONTRACT.md): snake_case payloads put on the queues by plain BullMQ producers, and Postgres read
 * back with plain SQL. Nothing here knows how the engine is implemented.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { Job, Queue, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { expect, inject } from 'vitest';
import { startService, type Service } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { FinishedJob, TestService } from './service.js';

// ---------------------------------------------------------------------------------------------
// Catalog

export const ORG = 'UoX';
export const COURSE = 'course-v1:UoX+CS101+2026';
export const COURSE_EXTERNAL = 'CS101-F26';
export const COURSE_MODES = ['audit', 'honor', 'masters', 'verified'];

export interface CourseSpec {
  course_key: string;
  external_course_key?: string | null;
  modes?: string[];
}

export interface ProgramPayload {
  program_uuid: string;
  program_key: string;
  organization_key: string;
  curricula: { curriculum_uuid: string; is_active: boolean; course_keys: string[] }[];
  courses: CourseSpec[];
}

/**
 * An upsert-program payload with fresh uuids. By default one active curriculum holding COURSE
 * (external key COURSE_EXTERNAL) in organization ORG.
 */
export function programPayload(opts: {
  org?: string;
  courses?: CourseSpec[];
  curricula?: { is_active: boolean; course_keys: string[] }[];
} = {}): ProgramPayload {
  const courses = opts.courses ?? [{ course_key: COURSE, external_course_key: COURSE_EXTERNAL, modes: COURSE_MODES }];
  const curricula = (opts.curricula ?? [{ is_active: true, course_keys: courses.map((c) => c.course_key) }]).map((c) => ({
    curriculum_uuid: randomUUID(),
    ...c,
  }));
  const program_uuid = randomUUID();
  return {
    program_uuid,
    program_key: `program-${program_uuid.slice(0, 8)}`,
    organization_key: opts.org ?? ORG,
    curricula,
    courses,
  };
}

export async function upsertProgram(t: TestService, program: ProgramPayload): Promise<ProgramPayload> {
  const done = await t.run('enrollments', 'upsert-program', program);
  expect(done.state, done.failedReason).toBe('completed');
  return program;
}

export async function newProgram(t: TestService, opts: Parameters<typeof programPayload>[0] = {}): Promise<ProgramPayload> {
  return upsertProgram(t, programPayload(opts));
}

// ---------------------------------------------------------------------------------------------
// Unique names, so that the tests of one file never see each other's learners.

let counter = 0;
const run = randomBytes(2).toString('hex');
/** A student key nobody used before in this process, e.g. `learner-3f2a-17`. */
export function uniqueKey(label = 'learner'): string {
  return `${label}-${run}-${++counter}`;
}
let userCounter = 0;
const userBase = 1_000_000 + Math.floor(Math.random() * 1_000_000) * 100;
export function uniqueUserId(): number {
  return userBase + ++userCounter;
}

// ---------------------------------------------------------------------------------------------
// Write jobs

export type Action = 'create' | 'update' | 'create_or_update';

export interface WriteResult {
  code: number;
  results: Record<string, string>;
  counts: Record<string, number>;
}

export interface ProgramRecord {
  student_key: string;
  status: string;
  curriculum_uuid?: string;
}

export interface CourseRecord {
  student_key: string;
  status: string;
  course_staff?: boolean | null;
}

/** Adds a write-program-enrollments job and waits for it. */
export function enroll(
  t: TestService,
  programUuid: string,
  enrollments: ProgramRecord[],
  opts: { action?: Action; requested_by?: string; job?: JobsOptions } = {},
): Promise<FinishedJob<WriteResult>> {
  const data: Record<string, unknown> = { program_uuid: programUuid, action: opts.action ?? 'create_or_update', enrollments };
  if (opts.requested_by !== undefined) data.requested_by = opts.requested_by;
  return t.run<WriteResult>('enrollments', 'write-program-enrollments', data, opts.job);
}

/** Adds a write-program-course-enrollments job and waits for it. */
export function enrollCourse(
  t: TestService,
  programUuid: string,
  courseKey: string,
  enrollments: CourseRecord[],
  opts: { action?: Action; requested_by?: string; job?: JobsOptions } = {},
): Promise<FinishedJob<WriteResult>> {
  const data: Record<string, unknown> = {
    program_uuid: programUuid,
    course_key: courseKey,
    action: opts.action ?? 'create_or_update',
    enrollments,
  };
  if (opts.requested_by !== undefined) data.requested_by = opts.requested_by;
  return t.run<WriteResult>('enrollments', 'write-program-course-enrollments', data, opts.job);
}

/** Like enroll, but asserts the job completed and returns its result. */
export async function enrollOk(
  t: TestService,
  programUuid: string,
  enrollments: ProgramRecord[],
  opts: Parameters<typeof enroll>[3] = {},
): Promise<WriteResult> {
  const done = await enroll(t, programUuid, enrollments, opts);
  expect(done.state, done.failedReason).toBe('completed');
  return done.result;
}

export async function enrollCourseOk(
  t: TestService,
  programUuid: string,
  courseKey: string,
  enrollments: CourseRecord[],
  opts: Parameters<typeof enrollCourse>[4] = {},
): Promise<WriteResult> {
  const done = await enrollCourse(t, programUuid, courseKey, enrollments, opts);
  expect(done.state, done.failedReason).toBe('completed');
  return done.result;
}

/** The counts a result must carry: one entry per result value that occurs. */
export function tally(results: Record<string, string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of Object.values(results)) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

const PROGRAM_STATUSES = new Set(['enrolled', 'pending', 'suspended', 'canceled', 'ended']);
const COURSE_STATUSES = new Set(['active', 'inactive']);
/** The Open edX rule for `code`, computed independently from the results. */
export function expectedCode(results: Record<string, string>, kind: 'program' | 'course'): number {
  const values = Object.values(results);
  if (values.length === 0) return 204;
  const ok = kind === 'program' ? PROGRAM_STATUSES : COURSE_STATUSES;
  const good = values.filter((v) => ok.has(v)).length;
  if (good === values.length) return 200;
  if (good === 0) return 422;
  return 207;
}

/** Asserts the whole result envelope: exact results, counts tallied from them, code. */
export function expectResult(result: WriteResult, results: Record<string, string>, code?: number): void {
  expect(result.results).toEqual(results);
  expect(result.counts).toEqual(tally(results));
  if (code !== undefined) expect(result.code).toBe(code);
}

// ---------------------------------------------------------------------------------------------
// Account events (queue `accounts`)

export interface Account {
  user_id: number;
  username: string;
  email: string;
}

/** Adds an account-created event for a fresh account with the given identities and waits for it. */
export async function announceAccount(
  t: TestService,
  identities: { organization_key: string; external_user_key: string }[],
  account: Partial<Account> = {},
): Promise<Account> {
  const user_id = account.user_id ?? uniqueUserId();
  const acc: Account = { user_id, username: account.username ?? `user${user_id}`, email: account.email ?? `user${user_id}@example.org` };
  const done = await t.run('accounts', 'account-created', { event_id: randomUUID(), ...acc, identities });
  expect(done.state, done.failedReason).toBe('completed');
  return acc;
}

/** An account whose single identity is (org, key). */
export function announceLearner(t: TestService, key: string, org = ORG): Promise<Account> {
  return announceAccount(t, [{ organization_key: org, external_user_key: key }]);
}

/** Adds a course-enrollment-changed event (the LMS's word on a CE) and waits for it. */
export async function courseEnrollmentChanged(
  t: TestService,
  ce: { user_id: number; course_key: string; mode: string; is_active: boolean },
): Promise<void> {
  const done = await t.run('accounts', 'course-enrollment-changed', { event_id: randomUUID(), ...ce });
  expect(done.state, done.failedReason).toBe('completed');
}

// ---------------------------------------------------------------------------------------------
// Reading Postgres

export interface PeRow {
  id: number;
  program_uuid: string;
  organization_key: string;
  student_key: string;
  user_id: number | null;
  curriculum_uuid: string;
  status: string;
}

export interface PceRow {
  id: number;
  program_enrollment_id: number;
  program_uuid: string;
  course_key: string;
  status: string;
  course_enrollment_id: number | null;
}

export interface CeRow {
  id: number;
  user_id: number;
  course_key: string;
  mode: string;
  is_active: boolean;
}

export interface HistoryRowRead {
  id: number;
  entity: string;
  entity_id: number;
  program_enrollment_id: number | null;
  action: string;
  changes: Record<string, [unknown, unknown]>;
  job_id: string | null;
  requested_by: string | null;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** The PE of (program, key), key matched case-insensitively; undefined when there is none. */
export async function peOf(t: TestService, programUuid: string, key: string): Promise<PeRow | undefined> {
  const rows = await t.sql`
    select id, program_uuid::text, organization_key, student_key, user_id, curriculum_uuid::text, status
    from program_enrollments where program_uuid = ${programUuid} and lower(student_key) = lower(${key})`;
  expect(rows.length).toBeLessThanOrEqual(1);
  const r = rows[0];
  return r ? ({ ...r, id: Number(r.id), user_id: num(r.user_id) } as PeRow) : undefined;
}

export async function pesOf(t: TestService, programUuid: string): Promise<PeRow[]> {
  const rows = await t.sql`
    select id, program_uuid::text, organization_key, student_key, user_id, curriculum_uuid::text, status
    from program_enrollments where program_uuid = ${programUuid} order by id`;
  return rows.map((r) => ({ ...r, id: Number(r.id), user_id: num(r.user_id) }) as PeRow);
}

/** Every PCE of the learner (case-insensitive key) in the course, across all programs. */
export async function pcesOf(t: TestService, key: string, courseKey: string, org = ORG): Promise<PceRow[]> {
  const rows = await t.sql`
    select pce.id, pce.program_enrollment_id, pe.program_uuid::text, pce.course_key, pce.status, pce.course_enrollment_id
    from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id
    where lower(pe.student_key) = lower(${key}) and pe.organization_key = ${org} and pce.course_key = ${courseKey}
    order by pce.id`;
  return rows.map(
    (r) => ({ ...r, id: Number(r.id), program_enrollment_id: Number(r.program_enrollment_id), course_enrollment_id: num(r.course_enrollment_id) }) as PceRow,
  );
}

/** The PCE of (program, key, course); undefined when there is none. */
export async function pceOf(t: TestService, programUuid: string, key: string, courseKey: string): Promise<PceRow | undefined> {
  const all = await pcesOf(t, key, courseKey, (await t.sql`select organization_key from programs where program_uuid = ${programUuid}`)[0]!.organization_key);
  const mine = all.filter((p) => p.program_uuid === programUuid);
  expect(mine.length).toBeLessThanOrEqual(1);
  return mine[0];
}

export async function cesOf(t: TestService, userId: number, courseKey?: string): Promise<CeRow[]> {
  const rows = courseKey === undefined
    ? await t.sql`select id, user_id, course_key, mode, is_active from course_enrollments where user_id = ${userId} order by id`
    : await t.sql`select id, user_id, course_key, mode, is_active from course_enrollments where user_id = ${userId} and course_key = ${courseKey} order by id`;
  return rows.map((r) => ({ ...r, id: Number(r.id), user_id: Number(r.user_id) }) as CeRow);
}

/** The single CE of (user, course); fails when there are several, undefined when none. */
export async function ceOf(t: TestService, userId: number, courseKey: string): Promise<CeRow | undefined> {
  const rows = await cesOf(t, userId, courseKey);
  expect(rows.length).toBeLessThanOrEqual(1);
  return rows[0];
}

export async function isCourseStaff(t: TestService, userId: number, courseKey: string): Promise<boolean> {
  const rows = await t.sql`select 1 from course_staff_roles where user_id = ${userId} and course_key = ${courseKey}`;
  return rows.length > 0;
}

export async function hasPendingStaff(t: TestService, pceId: number): Promise<boolean> {
  const rows = await t.sql`select role from pending_role_assignments where program_course_enrollment_id = ${pceId}`;
  return rows.length > 0;
}

function historyRow(r: Record<string, unknown>): HistoryRowRead {
  return {
    id: Number(r.id),
    entity: r.entity as string,
    entity_id: Number(r.entity_id),
    program_enrollment_id: num(r.program_enrollment_id),
    action: r.action as string,
    changes: r.changes as Record<string, [unknown, unknown]>,
    job_id: (r.job_id as string | null) ?? null,
    requested_by: (r.requested_by as string | null) ?? null,
  };
}

/** History rows of one entity, oldest first. */
export async function historyOf(t: TestService, entity: string, entityId: number): Promise<HistoryRowRead[]> {
  const rows = await t.sql`
    select id, entity, entity_id, program_enrollment_id, action, changes, job_id, requested_by
    from history where entity = ${entity} and entity_id = ${entityId} order by id`;
  return rows.map(historyRow);
}

/** History rows written by one job, oldest first. */
export async function historyOfJob(t: TestService, jobId: string): Promise<HistoryRowRead[]> {
  const rows = await t.sql`
    select id, entity, entity_id, program_enrollment_id, action, changes, job_id, requested_by
    from history where job_id = ${jobId} order by id`;
  return rows.map(historyRow);
}

/** Row counts of every table the write engine touches. */
export async function dbState(t: TestService): Promise<Record<string, number>> {
  const [r] = await t.sql`
    select
      (select count(*) from program_enrollments)::int as program_enrollments,
      (select count(*) from program_course_enrollments)::int as program_course_enrollments,
      (select count(*) from course_enrollments)::int as course_enrollments,
      (select count(*) from course_staff_roles)::int as course_staff_roles,
      (select count(*) from pending_role_assignments)::int as pending_role_assignments,
      (select count(*) from history)::int as history,
      (select count(*) from program_course_enrollments where status = 'active')::int as active_pces,
      (select count(*) from course_enrollments where is_active)::int as active_ces`;
  return { ...r } as Record<string, number>;
}

/** Sets a PE's modification time into the past, as if the PE had been left alone for `days`. */
export async function agePe(t: TestService, peId: number, days = 10): Promise<void> {
  await t.sql`update program_enrollments set modified_at = now() - make_interval(days => ${days}) where id = ${peId}`;
}

/** Age of a PE's modification time in seconds. */
export async function peAgeSeconds(t: TestService, peId: number): Promise<number> {
  const [r] = await t.sql`select extract(epoch from now() - modified_at)::float8 as age from program_enrollments where id = ${peId}`;
  return Number(r!.age);
}

/**
 * Replays every history row of every PE, PCE and CE in the database and checks that
 *  - each entity starts with exactly one `created` row whose olds are all null,
 *  - each `changed` row's olds are the values the replay holds at that point (no lost rows),
 *  - each `changed` row changes something,
 *  - the replay ends at the row as it is now, for the fields the history format records.
 */
export async function expectHistoryReplaysToState(t: TestService): Promise<void> {
  const rows = (await t.sql`
    select id, entity, entity_id, program_enrollment_id, action, changes, job_id, requested_by
    from history order by id`).map(historyRow);
  const replay = new Map<string, Record<string, unknown>>();
  for (const h of rows) {
    const id = `${h.entity}#${h.entity_id}`;
    const state = replay.get(id);
    if (h.action === 'created') {
      expect(state, `${id} created twice (history row ${h.id})`).toBeUndefined();
      const created: Record<string, unknown> = {};
      for (const [field, [old, now]] of Object.entries(h.changes)) {
        expect(old, `${id} created with a non-null old ${field}`).toBeNull();
        created[field] = now;
      }
      replay.set(id, created);
    } else if (h.action === 'changed') {
      expect(state, `${id} changed before it was created (history row ${h.id})`).toBeDefined();
      expect(Object.keys(h.changes).length, `${id} history row ${h.id} changes nothing`).toBeGreaterThan(0);
      for (const [field, [old, now]] of Object.entries(h.changes)) {
        if (field in state!) expect(old, `${id} history row ${h.id}: old ${field}`).toEqual(state![field]);
        expect(now, `${id} history row ${h.id}: ${field} changed to the same value`).not.toEqual(old);
        state![field] = now;
      }
    } else {
      replay.delete(id);
    }
  }
  const pes = await t.sql`select id, student_key, status, curriculum_uuid::text, user_id from program_enrollments`;
  const pces = await t.sql`select id, course_key, status, course_enrollment_id from program_course_enrollments`;
  const ces = await t.sql`select id, user_id, course_key, mode, is_active from course_enrollments`;
  const check = (entity: string, row: Record<string, unknown>, fields: string[]) => {
    const id = `${entity}#${Number(row.id)}`;
    const state = replay.get(id);
    expect(state, `${id} has no created history row`).toBeDefined();
    for (const f of fields) {
      const now = row[f] === null || row[f] === undefined ? null : typeof row[f] === 'string' && /^\d+$/.test(row[f] as string) && f.endsWith('_id') ? Number(row[f]) : row[f];
      expect(state![f] ?? null, `${id}: replayed ${f}`).toEqual(now);
    }
    replay.delete(id);
  };
  for (const r of pes) check('program_enrollment', r, ['student_key', 'status', 'curriculum_uuid', 'user_id']);
  for (const r of pces) check('program_course_enrollment', r, ['course_key', 'status', 'course_enrollment_id']);
  for (const r of ces) check('course_enrollment', r, ['user_id', 'course_key', 'mode', 'is_active']);
  expect([...replay.keys()], 'history of rows that no longer exist without a deleted row').toEqual([]);
}

// ---------------------------------------------------------------------------------------------
// Extra services on the test's database

/** A service started by the test itself, on the test's database but under a queue prefix of its own. */
export interface ExtraService {
  prefix: string;
  queues: { enrollments: Queue; accounts: Queue };
  stop(): Promise<void>;
}

function extraEnv(t: TestService, prefix: string, env: Record<string, string>): Record<string, string> {
  return {
    REDIS_URL: inject('redisUrl'),
    DATABASE_URL: t.databaseUrl,
    QUEUE_PREFIX: prefix,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    WORKER_CONCURRENCY: '2',
    ...env,
  };
}

async function producerQueues(prefix: string) {
  const connection = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  const queues = {
    enrollments: new Queue('enrollments', { connection, prefix }),
    accounts: new Queue('accounts', { connection, prefix }),
  };
  const close = async () => {
    await Promise.all(Object.values(queues).map((q) => q.close()));
    let cursor = '0';
    do {
      const [next, keys] = await connection.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length) await connection.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await connection.quit();
  };
  return { queues, close };
}

/** Producers for a queue prefix no service watches yet. */
export async function queuesOn(prefix: string) {
  return producerQueues(prefix);
}

/** An in-process service (as `npm start` runs it) on the test's database, under `prefix`. */
export async function startServiceOn(t: TestService, prefix: string, env: Record<string, string> = {}): Promise<Service> {
  return startService(loadConfig(extraEnv(t, prefix, env)));
}

/**
 * The service as a real child process (`tsx src/main.ts`), so that a test can kill it with SIGKILL
 * half way through a job: no graceful close, no handing back, its Postgres transactions aborted.
 */
export function spawnServiceProcess(t: TestService, prefix: string, env: Record<string, string> = {}): ChildProcess {
  const root = path.resolve(import.meta.dirname, '../..');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
    cwd: root,
    env: { ...process.env, ...extraEnv(t, prefix, env) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d) => {
    if (process.env.TEST_LOG_LEVEL) process.stderr.write(d);
  });
  return child;
}

export function newPrefix(): string {
  return `x${randomBytes(5).toString('hex')}`;
}

/** Waits until `probe` returns a value other than undefined. */
export async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string, everyMs = 10): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits for a job added through `queue` to complete or fail. */
export async function waitJob<R = any>(queue: Queue, job: Job, timeoutMs = 120_000): Promise<FinishedJob<R>> {
  return waitFor(
    async () => {
      const state = await job.getState();
      if (state !== 'completed' && state !== 'failed') return undefined;
      const fresh = (await Job.fromId(queue, job.id!))!;
      return { job: fresh, state, result: fresh.returnvalue as R, failedReason: fresh.failedReason } as FinishedJob<R>;
    },
    timeoutMs,
    `job ${job.name} ${job.id}`,
    25,
  );
}
