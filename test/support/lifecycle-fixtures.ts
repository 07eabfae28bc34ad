/**
 * Helpers for the accounts-and-lifecycle tests (account-created, link-program-enrollments,
 * expire-waiting-enrollments, retire-learner). Everything goes through the wire contract
 * (CONTRACT.md): jobs are added with plain BullMQ producers in snake_case, and state is read
 * back from Postgres with `t.sql`. Nothing here reaches into src/.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { FinishedJob, TestService } from './service.js';

/** A short random token, so that every test works on names of its own in the shared file database. */
export function token(): string {
  return randomBytes(4).toString('hex');
}

let nextUserId = 1_000 + Math.floor(Math.random() * 1_000) * 1_000;

export interface Account {
  user_id: number;
  username: string;
  email: string;
}

/** A fresh account (not yet announced to the service). */
export function newAccount(label = 'learner'): Account {
  const user_id = nextUserId++;
  return { user_id, username: `${label}-${user_id}`, email: `${label}-${user_id}@example.org` };
}

export interface Program {
  program_uuid: string;
  organization_key: string;
  curriculum_uuid: string;
  course_keys: string[];
}

export interface ProgramOptions {
  organization_key: string;
  course_keys?: string[];
  /** Modes per course key; a course not listed gets the contract's default (`audit`, `masters`). */
  modes?: Record<string, string[]>;
  program_uuid?: string;
}

/** Loads a program with one active curriculum holding `course_keys` (upsert-program). */
export async function createProgram(t: TestService, opts: ProgramOptions): Promise<Program> {
  const program: Program = {
    program_uuid: opts.program_uuid ?? randomUUID(),
    organization_key: opts.organization_key,
    curriculum_uuid: randomUUID(),
    course_keys: opts.course_keys ?? [],
  };
  const payload = {
    program_uuid: program.program_uuid,
    program_key: `program-${token()}`,
    organization_key: program.organization_key,
    curricula: [{ curriculum_uuid: program.curriculum_uuid, is_active: true, course_keys: program.course_keys }],
    courses: program.course_keys.map((course_key) =>
      opts.modes?.[course_key] ? { course_key, modes: opts.modes[course_key] } : { course_key },
    ),
  };
  const done = await t.run('enrollments', 'upsert-program', payload);
  completed(done, 'upsert-program');
  return program;
}

/** A course key of its own for an organization. */
export function courseKey(organization_key: string, label = 'C'): string {
  return `course-v1:${organization_key}+${label}${token()}+2026`;
}

/** Fails the test with the job's failed reason unless the job completed; returns its result. */
export function completed<R>(done: FinishedJob<R>, what = done.job.name): R {
  if (done.state !== 'completed') {
    throw new Error(`${what} (job ${done.job.id}) did not complete: ${done.state}: ${done.failedReason}`);
  }
  return done.result;
}

export interface WriteResult {
  code: number;
  results: Record<string, string>;
  counts: Record<string, number>;
}

type Action = 'create' | 'update' | 'create_or_update';

/**
 * write-program-enrollments. `records` are `{student_key, status}` (or bare keys, `enrolled`).
 * Unless `expectStatuses` is false, asserts that every learner got the status it was sent.
 */
export async function writeEnrollments(
  t: TestService,
  program: Program,
  records: Array<string | { student_key: string; status: string }>,
  opts: { action?: Action; requested_by?: string; expectStatuses?: boolean } = {},
): Promise<FinishedJob<WriteResult>> {
  const enrollments = records.map((r) => (typeof r === 'string' ? { student_key: r, status: 'enrolled' } : r));
  const done = await t.run<WriteResult>('enrollments', 'write-program-enrollments', {
    program_uuid: program.program_uuid,
    action: opts.action ?? 'create_or_update',
    enrollments,
    ...(opts.requested_by ? { requested_by: opts.requested_by } : {}),
  });
  const result = completed(done, 'write-program-enrollments');
  if (opts.expectStatuses !== false) {
    for (const e of enrollments) expect(result.results[e.student_key.trim()], `result of ${e.student_key}`).toBe(e.status);
  }
  return done;
}

/**
 * write-program-course-enrollments. `records` are `{student_key, status, course_staff?}` (or bare
 * keys, `active`). Unless `expectStatuses` is false, asserts every learner got the status it was sent.
 */
export async function writeCourseEnrollments(
  t: TestService,
  program: Program,
  course_key: string,
  records: Array<string | { student_key: string; status: string; course_staff?: boolean }>,
  opts: { action?: Action; requested_by?: string; expectStatuses?: boolean } = {},
): Promise<FinishedJob<WriteResult>> {
  const enrollments = records.map((r) => (typeof r === 'string' ? { student_key: r, status: 'active' } : r));
  const done = await t.run<WriteResult>('enrollments', 'write-program-course-enrollments', {
    program_uuid: program.program_uuid,
    course_key,
    action: opts.action ?? 'create_or_update',
    enrollments,
    ...(opts.requested_by ? { requested_by: opts.requested_by } : {}),
  });
  const result = completed(done, 'write-program-course-enrollments');
  if (opts.expectStatuses !== false) {
    for (const e of enrollments) expect(result.results[e.student_key.trim()], `result of ${e.student_key}`).toBe(e.status);
  }
  return done;
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

export function accountCreatedPayload(account: Account, identities: Identity[], event_id: string = randomUUID()) {
  return { event_id, user_id: account.user_id, username: account.username, email: account.email, identities };
}

/** Sends account-created and waits for it to finish (not asserting the outcome). */
export function accountCreated(
  t: TestService,
  account: Account,
  identities: Identity[],
  event_id: string = randomUUID(),
): Promise<FinishedJob<AccountCreatedResult>> {
  return t.run<AccountCreatedResult>('accounts', 'account-created', accountCreatedPayload(account, identities, event_id));
}

/** Sends course-enrollment-changed (the LMS's word on a CE) and asserts it completed. */
export async function courseEnrollmentChanged(
  t: TestService,
  user_id: number,
  course_key: string,
  mode: string,
  is_active: boolean,
): Promise<void> {
  const done = await t.run('accounts', 'course-enrollment-changed', {
    event_id: randomUUID(),
    user_id,
    course_key,
    mode,
    is_active,
  });
  expect(completed(done, 'course-enrollment-changed')).toEqual({ course_key, mode, is_active });
}

/** Sends link-program-enrollments and waits for it to finish. */
export function linkEnrollments(
  t: TestService,
  program_uuid: string,
  links: Array<{ student_key: string; username: string }>,
): Promise<FinishedJob<{ errors: Record<string, string> }>> {
  return t.run<{ errors: Record<string, string> }>('enrollments', 'link-program-enrollments', { program_uuid, links });
}

// ---------------------------------------------------------------------------------------------
// Reading state back (bigint columns are cast so that they compare as numbers).

export interface PeRow {
  id: number;
  program_uuid: string;
  student_key: string;
  user_id: number | null;
  status: string;
  curriculum_uuid: string;
  modified_at: Date;
}

export async function findPe(t: TestService, program_uuid: string, student_key: string): Promise<PeRow | undefined> {
  const rows = await t.sql<PeRow[]>`
    select id::float8 as id, program_uuid::text as program_uuid, student_key, user_id::float8 as user_id, status,
           curriculum_uuid::text as curriculum_uuid, modified_at
    from program_enrollments
    where program_uuid = ${program_uuid} and lower(student_key) = lower(${student_key})`;
  expect(rows.length, `PEs of ${student_key} in ${program_uuid}`).toBeLessThanOrEqual(1);
  return rows[0];
}

export async function getPe(t: TestService, program_uuid: string, student_key: string): Promise<PeRow> {
  const pe = await findPe(t, program_uuid, student_key);
  if (!pe) throw new Error(`no PE for ${student_key} in program ${program_uuid}`);
  return pe;
}

export async function pesOfProgram(t: TestService, program_uuid: string): Promise<PeRow[]> {
  return t.sql<PeRow[]>`
    select id::float8 as id, program_uuid::text as program_uuid, student_key, user_id::float8 as user_id, status,
           curriculum_uuid::text as curriculum_uuid, modified_at
    from program_enrollments where program_uuid = ${program_uuid} order by id`;
}

export interface PceRow {
  id: number;
  program_enrollment_id: number;
  course_key: string;
  status: string;
  course_enrollment_id: number | null;
}

export async function pcesOf(t: TestService, program_enrollment_id: number): Promise<PceRow[]> {
  return t.sql<PceRow[]>`
    select id::float8 as id, program_enrollment_id::float8 as program_enrollment_id, course_key, status,
           course_enrollment_id::float8 as course_enrollment_id
    from program_course_enrollments where program_enrollment_id = ${program_enrollment_id} order by course_key`;
}

export async function getPce(t: TestService, program_enrollment_id: number, course_key: string): Promise<PceRow> {
  const [pce] = (await pcesOf(t, program_enrollment_id)).filter((p) => p.course_key === course_key);
  if (!pce) throw new Error(`no PCE in ${course_key} for PE ${program_enrollment_id}`);
  return pce;
}

export interface CeRow {
  id: number;
  user_id: number;
  course_key: string;
  mode: string;
  is_active: boolean;
}

/** Every CE of an account, by course key. */
export async function cesOf(t: TestService, user_id: number): Promise<CeRow[]> {
  return t.sql<CeRow[]>`
    select id::float8 as id, user_id::float8 as user_id, course_key, mode, is_active
    from course_enrollments where user_id = ${user_id} order by course_key`;
}

export async function findCe(t: TestService, user_id: number, course_key: string): Promise<CeRow | undefined> {
  return (await cesOf(t, user_id)).find((c) => c.course_key === course_key);
}

export async function ceById(t: TestService, id: number): Promise<CeRow> {
  const [ce] = await t.sql<CeRow[]>`
    select id::float8 as id, user_id::float8 as user_id, course_key, mode, is_active
    from course_enrollments where id = ${id}`;
  if (!ce) throw new Error(`no CE ${id}`);
  return ce;
}

export async function staffRoles(t: TestService, user_id: number): Promise<string[]> {
  const rows = await t.sql<{ course_key: string }[]>`
    select course_key from course_staff_roles where user_id = ${user_id} order by course_key`;
  return rows.map((r) => r.course_key);
}

export async function pendingRoles(t: TestService, pce_id: number): Promise<number> {
  const rows = await t.sql<{ n: number }[]>`
    select count(*)::int as n from pending_role_assignments where program_course_enrollment_id = ${pce_id}`;
  return rows[0]!.n;
}

export interface HistoryRow {
  entity: string;
  entity_id: number;
  program_enrollment_id: number | null;
  action: string;
  changes: Record<string, [unknown, unknown]>;
  job_id: string | null;
  requested_by: string | null;
}

/** History rows of one entity, oldest first. */
export async function historyOf(t: TestService, entity: string, entity_id: number): Promise<HistoryRow[]> {
  return t.sql<HistoryRow[]>`
    select entity, entity_id::float8 as entity_id, program_enrollment_id::float8 as program_enrollment_id, action,
           changes, job_id, requested_by
    from history where entity = ${entity} and entity_id = ${entity_id} order by id`;
}

/** History rows written by one job. */
export async function historyOfJob(t: TestService, job_id: string): Promise<HistoryRow[]> {
  return t.sql<HistoryRow[]>`
    select entity, entity_id::float8 as entity_id, program_enrollment_id::float8 as program_enrollment_id, action,
           changes, job_id, requested_by
    from history where job_id = ${job_id} order by id`;
}

/**
 * Tables of the data model, read from the database itself so that the checks below cover every
 * table, whatever the schema calls them. The job ledger (`job_results`, `job_chunks`) is left
 * out: it remembers each job's result for re-submissions (CONTRACT.md "Idempotent submission"),
 * and a new job run adds to it by design.
 */
async function modelTables(t: TestService): Promise<string[]> {
  const rows = await t.sql<{ table_name: string }[]>`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE'
      and table_name not in ('job_results', 'job_chunks')
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
  expect(Object.keys(found)).toEqual(expect.arrayContaining(['program_enrollments', 'program_course_enrollments', 'history']));
  const nonZero = Object.fromEntries(Object.entries(found).filter(([, v]) => v !== 0));
  expect(nonZero, `rows still holding ${needle}`).toEqual({});
}

export const RETIRED_KEY = /^retired_[0-9a-f]{64}$/;

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
