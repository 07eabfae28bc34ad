/**
 * Fixtures shared by the tests: catalog payloads, unique names, jobs added as the Registrar and the
 * LMS add them, and Postgres read back. Everything here speaks the wire contract (CONTRACT.md):
 * snake_case payloads put on the queues by plain BullMQ producers, rows read with plain SQL (bigint
 * columns cast so that they compare as numbers). Nothing here knows how the engine is implemented.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type JobsOptions, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import type { Fragment } from 'postgres';
import { beforeAll, expect, inject } from 'vitest';
import { type FinishedJob, type TestService, waitFor } from './service.js';

// ---------------------------------------------------------------------------------------------
// Unique names, so that the tests of one file never see each other's learners, courses or accounts.

/** A short random token, for names of one test's own in the file's shared database. */
export function token(): string {
  return randomBytes(4).toString('hex');
}

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

/** An organization of one test's own, e.g. `UoX-1f2e3d4c`. */
export function newOrg(label = 'UoX'): string {
  return `${label}-${token()}`;
}

/** A course key of one test's own in `organization_key`. */
export function newCourseKey(organization_key: string, label = 'C'): string {
  return `course-v1:${organization_key}+${label}${token()}+2026`;
}

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

export interface ProgramOptions {
  org?: string;
  /** A bare course key is a course without an external key, in the contract's default modes. */
  courses?: Array<string | CourseSpec>;
  curricula?: { is_active: boolean; course_keys: string[] }[];
  program_uuid?: string;
}

/**
 * An upsert-program payload with fresh uuids (but `program_uuid` when given). By default one active
 * curriculum holds every course, and the courses are COURSE alone (external key COURSE_EXTERNAL),
 * in organization ORG.
 */
export function programPayload(opts: ProgramOptions = {}): ProgramPayload {
  const courses = (
    opts.courses ?? [{ course_key: COURSE, external_course_key: COURSE_EXTERNAL, modes: COURSE_MODES }]
  ).map((c) => (typeof c === 'string' ? { course_key: c } : c));
  const curricula = (opts.curricula ?? [{ is_active: true, course_keys: courses.map((c) => c.course_key) }]).map(
    (c) => ({
      curriculum_uuid: randomUUID(),
      ...c,
    }),
  );
  const program_uuid = opts.program_uuid ?? randomUUID();
  return {
    program_uuid,
    program_key: `program-${program_uuid.slice(0, 8)}`,
    organization_key: opts.org ?? ORG,
    curricula,
    courses,
  };
}

export async function upsertProgram(t: TestService, program: ProgramPayload): Promise<ProgramPayload> {
  completed(await t.run('enrollments', 'upsert-program', program));
  return program;
}

export async function newProgram(t: TestService, opts: ProgramOptions = {}): Promise<ProgramPayload> {
  return upsertProgram(t, programPayload(opts));
}

/**
 * A program for the tests of the enclosing file or describe block: the payload at once, loaded
 * into the service before those tests run (call it after useTestService).
 */
export function useProgram(t: TestService, opts: ProgramOptions = {}): ProgramPayload {
  const program = programPayload(opts);
  beforeAll(async () => {
    await upsertProgram(t, program);
  });
  return program;
}

// ---------------------------------------------------------------------------------------------
// Jobs

/** Fails the test with the job's failed reason unless the job completed; returns its result. */
export function completed<R>(done: FinishedJob<R>, what = done.job.name): R {
  if (done.state !== 'completed') {
    throw new Error(`${what} (job ${done.job.id}) did not complete: ${done.state}: ${done.failedReason}`);
  }
  return done.result;
}

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

export interface WriteOptions {
  action?: Action;
  requested_by?: string;
  job?: JobsOptions;
}

/** Adds a write job for `target` (the program, and the course of a course write) and waits for it. */
function write(
  t: TestService,
  name: 'write-program-enrollments' | 'write-program-course-enrollments',
  target: { program_uuid: string; course_key?: string },
  enrollments: ProgramRecord[] | CourseRecord[],
  opts: WriteOptions,
): Promise<FinishedJob<WriteResult>> {
  const data: Record<string, unknown> = { ...target, action: opts.action ?? 'create_or_update', enrollments };
  if (opts.requested_by !== undefined) data.requested_by = opts.requested_by;
  return t.run<WriteResult>('enrollments', name, data, opts.job);
}

/** Adds a write-program-enrollments job and waits for it. */
export function enroll(
  t: TestService,
  programUuid: string,
  enrollments: ProgramRecord[],
  opts: WriteOptions = {},
): Promise<FinishedJob<WriteResult>> {
  return write(t, 'write-program-enrollments', { program_uuid: programUuid }, enrollments, opts);
}

/** Adds a write-program-course-enrollments job and waits for it. */
export function enrollCourse(
  t: TestService,
  programUuid: string,
  courseKey: string,
  enrollments: CourseRecord[],
  opts: WriteOptions = {},
): Promise<FinishedJob<WriteResult>> {
  return write(
    t,
    'write-program-course-enrollments',
    { program_uuid: programUuid, course_key: courseKey },
    enrollments,
    opts,
  );
}

/** Like enroll, but fails unless the job completed, and returns its result. */
export async function enrollOk(
  t: TestService,
  programUuid: string,
  enrollments: ProgramRecord[],
  opts: WriteOptions = {},
): Promise<WriteResult> {
  return completed(await enroll(t, programUuid, enrollments, opts));
}

/** Like enrollCourse, but fails unless the job completed, and returns its result. */
export async function enrollCourseOk(
  t: TestService,
  programUuid: string,
  courseKey: string,
  enrollments: CourseRecord[],
  opts: WriteOptions = {},
): Promise<WriteResult> {
  return completed(await enrollCourse(t, programUuid, courseKey, enrollments, opts));
}

type StatusRecord = { student_key: string; status: string };

/** `records`, each bare key read as a record of `status`. */
function asRecords<R extends StatusRecord>(records: Array<string | R>, status: string): Array<R | StatusRecord> {
  return records.map((r) => (typeof r === 'string' ? { student_key: r, status } : r));
}

/** Fails unless the job completed and every learner's result is the status it was sent (key trimmed). */
function expectStatusesAsSent(done: FinishedJob<WriteResult>, enrollments: StatusRecord[]): FinishedJob<WriteResult> {
  const result = completed(done);
  for (const e of enrollments)
    expect(result.results[e.student_key.trim()], `result of ${e.student_key}`).toBe(e.status);
  return done;
}

/**
 * enroll for a test that only sets the scene: `records` may be bare keys (`enrolled`); fails unless
 * the job completed and every learner got the status it was sent.
 */
export async function writeEnrollments(
  t: TestService,
  program: ProgramPayload,
  records: Array<string | ProgramRecord>,
  opts: WriteOptions = {},
): Promise<FinishedJob<WriteResult>> {
  const enrollments = asRecords(records, 'enrolled');
  return expectStatusesAsSent(await enroll(t, program.program_uuid, enrollments, opts), enrollments);
}

/** enrollCourse as writeEnrollments is enroll: bare keys are `active`. */
export async function writeCourseEnrollments(
  t: TestService,
  program: ProgramPayload,
  courseKey: string,
  records: Array<string | CourseRecord>,
  opts: WriteOptions = {},
): Promise<FinishedJob<WriteResult>> {
  const enrollments = asRecords(records, 'active');
  return expectStatusesAsSent(await enrollCourse(t, program.program_uuid, courseKey, enrollments, opts), enrollments);
}

/**
 * Adds a write job that may be retried and asserts that it failed at once, without a retry and
 * writing nothing; returns its failed reason.
 */
export async function writeFailsAtOnce(
  t: TestService,
  name: 'write-program-enrollments' | 'write-program-course-enrollments',
  data: unknown,
): Promise<string> {
  const before = await dbState(t);
  const done = await t.run('enrollments', name, data, { attempts: 5, backoff: { type: 'fixed', delay: 10 } });
  expect(done.state).toBe('failed');
  expect(done.job.attemptsMade).toBe(1);
  expect(await dbState(t)).toEqual(before);
  return done.failedReason!;
}

/** The counts a result must carry: one entry per result value that occurs. */
export function tally(results: Record<string, string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of Object.values(results)) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

/** Asserts the whole result envelope: exact results, counts tallied from them, code. */
export function expectResult(result: WriteResult, results: Record<string, string>, code?: number): void {
  expect(result.results).toEqual(results);
  expect(result.counts).toEqual(tally(results));
  if (code !== undefined) expect(result.code).toBe(code);
}

/** Adds a link-program-enrollments job and waits for it. */
export function linkEnrollments(
  t: TestService,
  program_uuid: string,
  links: Array<{ student_key: string; username: string }>,
): Promise<FinishedJob<{ errors: Record<string, string> }>> {
  return t.run<{ errors: Record<string, string> }>('enrollments', 'link-program-enrollments', { program_uuid, links });
}

export interface Progress {
  done: number;
  total: number;
}

export interface ProgressWatch {
  /** The reports of one job so far, oldest first. */
  of(jobId: string): Progress[];
  /**
   * Waits until the event stream has carried the job's `completed` or `failed` event. The stream
   * is ordered and a job's reports precede its end, so by then `of` holds all of them.
   */
  ended(jobId: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Collects the progress reports of the test service's `enrollments` queue as its event stream
 * carries them (every report, not only the last one BullMQ keeps on the job). Reports may arrive
 * before the test learns the job's id, so all are kept and `of` picks a job's afterwards.
 */
export async function watchProgress(t: TestService): Promise<ProgressWatch> {
  const connection = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  const events = new QueueEvents('enrollments', { connection, prefix: t.prefix });
  const reports: Array<{ jobId: string; data: unknown }> = [];
  const ended = new Set<string>();
  events.on('progress', ({ jobId, data }) => reports.push({ jobId, data }));
  events.on('completed', ({ jobId }) => ended.add(jobId));
  events.on('failed', ({ jobId }) => ended.add(jobId));
  await events.waitUntilReady();
  return {
    of: (jobId) => reports.filter((r) => r.jobId === jobId).map((r) => r.data as Progress),
    async ended(jobId, timeoutMs = 30_000) {
      await waitFor(async () => (ended.has(jobId) ? true : undefined), timeoutMs, `the end event of job ${jobId}`);
    },
    async close() {
      await events.close();
      await connection.quit();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Account events (queue `accounts`)

export interface Account {
  user_id: number;
  username: string;
  email: string;
}

export interface Identity {
  organization_key: string;
  external_user_key: string;
}

export interface Linked {
  program_uuid: string;
  student_key: string;
  course_keys: string[];
}

export interface AccountCreatedResult {
  linked: Linked[];
}

/** A fresh account, not yet announced to the service. */
export function newAccount(label = 'learner'): Account {
  const user_id = uniqueUserId();
  return { user_id, username: `${label}-${user_id}`, email: `${label}-${user_id}@example.org` };
}

export function accountCreatedPayload(account: Account, identities: Identity[], event_id: string = randomUUID()) {
  return { event_id, user_id: account.user_id, username: account.username, email: account.email, identities };
}

/** Adds an account-created event and waits for it, whatever its outcome. */
export function accountCreated(
  t: TestService,
  account: Account,
  identities: Identity[],
  event_id: string = randomUUID(),
): Promise<FinishedJob<AccountCreatedResult>> {
  return t.run<AccountCreatedResult>(
    'accounts',
    'account-created',
    accountCreatedPayload(account, identities, event_id),
  );
}

/** Announces a fresh account with the given identities; fails unless the event completed. */
export async function announceAccount(t: TestService, identities: Identity[]): Promise<Account> {
  const account = newAccount();
  completed(await accountCreated(t, account, identities));
  return account;
}

/** Announces a fresh account whose single identity is (org, key). */
export function announceLearner(t: TestService, key: string, org = ORG): Promise<Account> {
  return announceAccount(t, [{ organization_key: org, external_user_key: key }]);
}

/**
 * Adds a course-enrollment-changed event (the LMS's word on a CE) and waits for it; fails unless
 * it completed answering the CE as sent.
 */
export async function courseEnrollmentChanged(
  t: TestService,
  ce: { user_id: number; course_key: string; mode: string; is_active: boolean },
): Promise<void> {
  const done = await t.run('accounts', 'course-enrollment-changed', { event_id: randomUUID(), ...ce });
  const { course_key, mode, is_active } = ce;
  expect(completed(done, 'course-enrollment-changed')).toEqual({ course_key, mode, is_active });
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
  modified_at: Date;
}

/** The PEs `where` picks, oldest first. */
function selectPes(t: TestService, where: Fragment): Promise<PeRow[]> {
  return t.sql<PeRow[]>`
    select id::float8 as id, program_uuid::text as program_uuid, organization_key, student_key,
           user_id::float8 as user_id, curriculum_uuid::text as curriculum_uuid, status, modified_at
    from program_enrollments where ${where} order by id`;
}

/** The PE of (program, key), key matched case-insensitively; undefined when there is none. */
export async function peOf(t: TestService, programUuid: string, key: string): Promise<PeRow | undefined> {
  const rows = await selectPes(t, t.sql`program_uuid = ${programUuid} and lower(student_key) = lower(${key})`);
  expect(rows.length, `PEs of ${key} in ${programUuid}`).toBeLessThanOrEqual(1);
  return rows[0];
}

/** The PE of (program, key); fails when there is none. */
export async function getPe(t: TestService, programUuid: string, key: string): Promise<PeRow> {
  const pe = await peOf(t, programUuid, key);
  if (!pe) throw new Error(`no PE for ${key} in program ${programUuid}`);
  return pe;
}

export function pesOf(t: TestService, programUuid: string): Promise<PeRow[]> {
  return selectPes(t, t.sql`program_uuid = ${programUuid}`);
}

export function pesOfUser(t: TestService, userId: number): Promise<PeRow[]> {
  return selectPes(t, t.sql`user_id = ${userId}`);
}

export interface PceRow {
  id: number;
  program_enrollment_id: number;
  program_uuid: string;
  course_key: string;
  status: string;
  course_enrollment_id: number | null;
}

/** The PCEs `where` picks (`pce`, joined to its PE `pe`), by course key, then oldest first. */
function selectPces(t: TestService, where: Fragment): Promise<PceRow[]> {
  return t.sql<PceRow[]>`
    select pce.id::float8 as id, pce.program_enrollment_id::float8 as program_enrollment_id,
           pe.program_uuid::text as program_uuid, pce.course_key, pce.status,
           pce.course_enrollment_id::float8 as course_enrollment_id
    from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id
    where ${where} order by pce.course_key, pce.id`;
}

/** Every PCE of one PE, by course key. */
export function pcesOfPe(t: TestService, peId: number): Promise<PceRow[]> {
  return selectPces(t, t.sql`pce.program_enrollment_id = ${peId}`);
}

/** The PCE of one PE in one course; fails when there is none. */
export async function getPce(t: TestService, peId: number, courseKey: string): Promise<PceRow> {
  const [pce] = await selectPces(t, t.sql`pce.program_enrollment_id = ${peId} and pce.course_key = ${courseKey}`);
  if (!pce) throw new Error(`no PCE in ${courseKey} for PE ${peId}`);
  return pce;
}

/** Every PCE of the learner (org, key matched case-insensitively) in the course, across all programs, oldest first. */
export function pcesOfLearner(t: TestService, key: string, courseKey: string, org = ORG): Promise<PceRow[]> {
  return selectPces(
    t,
    t.sql`lower(pe.student_key) = lower(${key}) and pe.organization_key = ${org} and pce.course_key = ${courseKey}`,
  );
}

/** The PCE of (program, key, course); undefined when there is none. */
export async function pceOf(
  t: TestService,
  programUuid: string,
  key: string,
  courseKey: string,
): Promise<PceRow | undefined> {
  const rows = await selectPces(
    t,
    t.sql`pe.program_uuid = ${programUuid} and lower(pe.student_key) = lower(${key}) and pce.course_key = ${courseKey}`,
  );
  expect(rows.length).toBeLessThanOrEqual(1);
  return rows[0];
}

/** How many learners hold more than one active PCE in one course: the one-active-seat rule says none. */
export async function learnersWithTwoActiveSeats(t: TestService): Promise<number> {
  const [row] = await t.sql<{ n: number }[]>`
    select count(*)::int as n from (
      select pe.organization_key, lower(pe.student_key), pce.course_key
      from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id
      where pce.status = 'active' group by 1, 2, 3 having count(*) > 1) x`;
  return row!.n;
}

export interface CeRow {
  id: number;
  user_id: number;
  course_key: string;
  mode: string;
  is_active: boolean;
}

/** The CEs `where` picks, by course key, then oldest first. */
function selectCes(t: TestService, where: Fragment): Promise<CeRow[]> {
  return t.sql<CeRow[]>`
    select id::float8 as id, user_id::float8 as user_id, course_key, mode, is_active
    from course_enrollments where ${where} order by course_key, id`;
}

/** Every CE of an account (in one course, when given), by course key. */
export function cesOf(t: TestService, userId: number, courseKey?: string): Promise<CeRow[]> {
  return selectCes(
    t,
    courseKey === undefined ? t.sql`user_id = ${userId}` : t.sql`user_id = ${userId} and course_key = ${courseKey}`,
  );
}

/** The CE of (user, course); undefined when there is none. */
export async function ceOf(t: TestService, userId: number, courseKey: string): Promise<CeRow | undefined> {
  const rows = await cesOf(t, userId, courseKey);
  expect(rows.length).toBeLessThanOrEqual(1);
  return rows[0];
}

export async function ceById(t: TestService, id: number): Promise<CeRow> {
  const [ce] = await selectCes(t, t.sql`id = ${id}`);
  if (!ce) throw new Error(`no CE ${id}`);
  return ce;
}

/** The course keys in which the account has a course staff role, sorted. */
export async function staffRoles(t: TestService, userId: number): Promise<string[]> {
  const rows = await t.sql<{ course_key: string }[]>`
    select course_key from course_staff_roles where user_id = ${userId} order by course_key`;
  return rows.map((r) => r.course_key);
}

export async function isCourseStaff(t: TestService, userId: number, courseKey: string): Promise<boolean> {
  return (await staffRoles(t, userId)).includes(courseKey);
}

/** How many pending role assignments the PCE holds. */
export async function pendingRoles(t: TestService, pceId: number): Promise<number> {
  const [row] = await t.sql<{ n: number }[]>`
    select count(*)::int as n from pending_role_assignments where program_course_enrollment_id = ${pceId}`;
  return row!.n;
}

export async function hasPendingStaff(t: TestService, pceId: number): Promise<boolean> {
  return (await pendingRoles(t, pceId)) > 0;
}

export interface HistoryRow {
  id: number;
  entity: string;
  entity_id: number;
  program_enrollment_id: number | null;
  action: string;
  changes: Record<string, [unknown, unknown]>;
  job_id: string | null;
  requested_by: string | null;
}

/** The history rows `where` picks, oldest first. */
function selectHistory(t: TestService, where: Fragment): Promise<HistoryRow[]> {
  return t.sql<HistoryRow[]>`
    select id::float8 as id, entity, entity_id::float8 as entity_id,
           program_enrollment_id::float8 as program_enrollment_id, action, changes, job_id, requested_by
    from history where ${where} order by id`;
}

/** History rows of one entity, oldest first. */
export function historyOf(t: TestService, entity: string, entityId: number): Promise<HistoryRow[]> {
  return selectHistory(t, t.sql`entity = ${entity} and entity_id = ${entityId}`);
}

/** History rows written by one job, oldest first. */
export function historyOfJob(t: TestService, jobId: string): Promise<HistoryRow[]> {
  return selectHistory(t, t.sql`job_id = ${jobId}`);
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

/**
 * Tables of the data model, read from the database itself so that the checks below cover every
 * table, whatever the schema calls them. The job ledger (`job_results`, `job_chunks`) is left
 * out: it remembers each job's result for re-submissions (CONTRACT.md "Idempotent submission"),
 * and a new job run adds to it by design. So is `outbox_unpublished`, the relay's list of what it
 * has yet to publish, which shrinks as it publishes (the outbox itself, `outbox_batches`, counts).
 */
async function modelTables(t: TestService): Promise<string[]> {
  const rows = await t.sql<{ table_name: string }[]>`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE'
      and table_name not in ('job_results', 'job_chunks', 'outbox_unpublished')
    order by table_name`;
  return rows.map((r) => r.table_name);
}

/** Row counts of every table of the data model (see modelTables). */
export async function tableCounts(t: TestService): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of await modelTables(t)) {
    const rows = await t.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from "${table}"`);
    out[table] = rows[0]!.n;
  }
  return out;
}

/** Sets a PE's modification time into the past, as if the PE had been left alone for `days`. */
export async function agePe(t: TestService, peId: number, days = 10): Promise<void> {
  await t.sql`update program_enrollments set modified_at = now() - make_interval(days => ${days}) where id = ${peId}`;
}

/** Age of a PE's modification time in seconds. */
export async function peAgeSeconds(t: TestService, peId: number): Promise<number> {
  const [r] =
    await t.sql`select extract(epoch from now() - modified_at)::float8 as age from program_enrollments where id = ${peId}`;
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
  const rows = await selectHistory(t, t.sql`true`);
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
      const now =
        row[f] === null || row[f] === undefined
          ? null
          : typeof row[f] === 'string' && /^\d+$/.test(row[f] as string) && f.endsWith('_id')
            ? Number(row[f])
            : row[f];
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
// Retirement (retire-learner)

export const RETIRED_KEY = /^retired_[0-9a-f]{64}$/;

/**
 * Rows holding `needle` (case-insensitively, anywhere in the row's text, JSON included), per table
 * of the data model; `history.changes` is also searched on its own as `history_changes`.
 */
export async function traces(t: TestService, needle: string): Promise<Record<string, number>> {
  const n = needle.toLowerCase();
  const out: Record<string, number> = {};
  for (const table of await modelTables(t)) {
    const rows = await t.sql.unsafe<{ n: number }[]>(
      `select count(*)::int as n from "${table}" x where position($1 in lower(x::text)) > 0`,
      [n],
    );
    out[table] = rows[0]!.n;
  }
  const rows = await t.sql<{ n: number }[]>`
    select count(*)::int as n from history x where position(${n} in lower(x.changes::text)) > 0`;
  out.history_changes = rows[0]!.n;
  return out;
}

/** Asserts that `needle` appears nowhere in the data model (see traces). */
export async function expectNoTrace(t: TestService, needle: string): Promise<void> {
  const found = await traces(t, needle);
  expect(Object.keys(found)).toEqual(
    expect.arrayContaining(['program_enrollments', 'program_course_enrollments', 'history']),
  );
  const nonZero = Object.fromEntries(Object.entries(found).filter(([, v]) => v !== 0));
  expect(nonZero, `rows still holding ${needle}`).toEqual({});
}

// ---------------------------------------------------------------------------------------------
// Orders

/** Sorts like the contract: code-point order of the strings. */
export function codePointSort<T>(items: T[], key: (item: T) => string): T[] {
  return [...items].sort((a, b) => {
    const x = key(a);
    const y = key(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** Fisher–Yates with a seeded generator, so that an interleaving is reproducible. */
export function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
