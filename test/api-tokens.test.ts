/**
 * Who may do what on the HTTP API (docs/contract.md "Who may do what"), black-box against the running
 * service on real Redis and Postgres: every /api route × every kind of token, tokens kept only as
 * digests, revocation seen at once by another process, uploads that say who made them, and the
 * program catalog reads. Partner tokens are issued through the command line (a child process, as an
 * operator runs it) or through the same use case it calls.
 */
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { issueApiToken, revokeApiTokenNamed } from '../src/use-cases/api-tokens.js';
import {
  announceLearner,
  completed,
  enroll,
  newCourseKey,
  newOrg,
  newProgram,
  type ProgramPayload,
  programPayload,
  uniqueKey,
  upsertProgram,
} from './support/fixtures.js';
import { useTestService, waitFor } from './support/service.js';

const root = path.resolve(import.meta.dirname, '..');
const OPERATOR_TOKEN = `operator-${randomUUID()}`;
const t = useTestService({ API_TOKENS: `ops:${OPERATOR_TOKEN}` });

/** A request with `token` as bearer (none when null), answering status and parsed body. */
async function call(
  token: string | null,
  route: string,
  init: { method?: string; body?: FormData } = {},
  base = t.url,
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
  const res = await fetch(`${base}${route}`, { method: init.method ?? 'GET', body: init.body, headers });
  const text = await res.text();
  const isJson = (res.headers.get('content-type') ?? '').includes('json');
  return { status: res.status, body: isJson ? JSON.parse(text) : text };
}

function csvForm(csv: string): FormData {
  const form = new FormData();
  form.append('file', new Blob([csv], { type: 'text/csv' }), 'upload.csv');
  return form;
}

/** Runs `program-enrollments tokens …` as a child process on the test's database. */
function tokensCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli.ts'), 'tokens', ...args], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: t.databaseUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('API_TOKENS', () => {
  it('takes name:token and bare entries, bare ones named by position, and refuses a name given twice', () => {
    const config = loadConfig({ API_TOKENS: 'first, ops:secret-a ,third' });
    expect(config.API_TOKENS).toEqual([
      { name: 'token-1', token: 'first' },
      { name: 'ops', token: 'secret-a' },
      { name: 'token-3', token: 'third' },
    ]);
    expect(() => loadConfig({ API_TOKENS: 'a:x,a:y' })).toThrow(ConfigError);
    expect(() => loadConfig({ API_TOKENS: 'a:x,a:y' })).toThrow(/API_TOKENS: the name a is given twice/);
    expect(() => loadConfig({ API_TOKENS: 'bad name:x' })).toThrow(/API_TOKENS: entry 1: the name must be/);
    expect(loadConfig({}).API_TOKENS).toEqual([]);
  });
});

describe('every /api route × every kind of token', () => {
  const org = newOrg('UoX');
  const otherOrg = newOrg('UoY');
  const course = newCourseKey(org);
  const tokens = { read: '', write: '', other: '', revoked: '' };
  let P: ProgramPayload;
  let studentKey: string;
  let userId: number;
  let jobOfP: string;
  let jobOfNoProgram: string;

  beforeAll(async () => {
    P = await newProgram(t, { org, courses: [{ course_key: course, external_course_key: 'EXT-1' }] });
    await newProgram(t, { org: otherOrg });
    const issue = async (name: string, organizations: string[], permission: 'read' | 'write') =>
      (await issueApiToken(t.sql, { name, organizations, permission })).token;
    tokens.read = await issue('uox-reader', [org], 'read');
    tokens.write = await issue('uox-writer', [org], 'write');
    tokens.other = await issue('uoy-writer', [otherOrg], 'write');
    tokens.revoked = await issue('uox-revoked', [org], 'write');
    expect(await revokeApiTokenNamed(t.sql, 'uox-revoked')).toBe(true);

    studentKey = uniqueKey();
    const written = await enroll(t, P.program_uuid, [{ student_key: studentKey, status: 'enrolled' }]);
    completed(written);
    jobOfP = String(written.job.id);
    const account = await announceLearner(t, studentKey, org);
    userId = account.user_id;
    jobOfNoProgram = `expire-${randomUUID()}`;
    completed(await t.run('enrollments', 'expire-waiting-enrollments', {}, { jobId: jobOfNoProgram }));
  });

  const kinds = ['none', 'operator', 'read', 'write', 'other', 'revoked'] as const;
  type Kind = (typeof kinds)[number];
  const bearer = (kind: Kind): string | null =>
    kind === 'none' ? null : kind === 'operator' ? OPERATOR_TOKEN : tokens[kind];

  // Each route with the status docs/contract.md "Who may do what" gives each kind of token, in `kinds` order.
  const table: Array<{
    route: string;
    method?: 'POST';
    path: () => string;
    body?: () => FormData;
    expected: [number, number, number, number, number, number];
  }> = [
    { route: 'GET programs', path: () => '/api/v1/programs', expected: [401, 200, 200, 200, 200, 401] },
    {
      route: 'GET program',
      path: () => `/api/v1/programs/${P.program_uuid}`,
      expected: [401, 200, 200, 200, 403, 401],
    },
    {
      route: 'GET program (unknown)',
      path: () => `/api/v1/programs/${randomUUID()}`,
      expected: [401, 404, 404, 404, 404, 401],
    },
    {
      route: 'GET enrollments',
      path: () => `/api/v1/programs/${P.program_uuid}/enrollments`,
      expected: [401, 200, 200, 200, 403, 401],
    },
    {
      route: 'GET enrollments (unknown program)',
      path: () => `/api/v1/programs/${randomUUID()}/enrollments`,
      expected: [401, 404, 404, 404, 404, 401],
    },
    {
      route: 'GET course enrollments',
      path: () => `/api/v1/programs/${P.program_uuid}/courses/${encodeURIComponent(course)}/enrollments`,
      expected: [401, 200, 200, 200, 403, 401],
    },
    {
      route: 'GET history',
      path: () => `/api/v1/programs/${P.program_uuid}/enrollments/${studentKey}/history`,
      expected: [401, 200, 200, 200, 403, 401],
    },
    {
      route: 'GET user course enrollments',
      path: () => `/api/v1/users/${userId}/course_enrollments`,
      expected: [401, 200, 403, 403, 403, 401],
    },
    {
      route: 'POST enrollments upload',
      method: 'POST',
      path: () => `/api/v1/programs/${P.program_uuid}/enrollments/upload`,
      body: () => csvForm(`student_key,status\n${uniqueKey()},pending\n`),
      expected: [401, 202, 403, 202, 403, 401],
    },
    {
      route: 'POST enrollments upload (unknown program)',
      method: 'POST',
      path: () => `/api/v1/programs/${randomUUID()}/enrollments/upload`,
      body: () => csvForm(`student_key,status\n${uniqueKey()},pending\n`),
      expected: [401, 404, 404, 404, 404, 401],
    },
    {
      route: 'POST course enrollments upload',
      method: 'POST',
      path: () => `/api/v1/programs/${P.program_uuid}/course_enrollments/upload`,
      body: () => csvForm(`student_key,course_id,status\n${studentKey},${course},active\n`),
      expected: [401, 202, 403, 202, 403, 401],
    },
    { route: 'GET job', path: () => `/api/v1/jobs/${jobOfP}`, expected: [401, 200, 200, 200, 404, 401] },
    {
      route: 'GET job result.csv',
      path: () => `/api/v1/jobs/${jobOfP}/result.csv`,
      expected: [401, 200, 200, 200, 404, 401],
    },
    {
      route: 'GET job of no program',
      path: () => `/api/v1/jobs/${jobOfNoProgram}`,
      expected: [401, 200, 404, 404, 404, 401],
    },
    {
      route: 'GET job (unknown)',
      path: () => `/api/v1/jobs/nope-${randomUUID()}`,
      expected: [401, 404, 404, 404, 404, 401],
    },
    { route: 'GET unknown /api path', path: () => '/api/v1/nothing-here', expected: [401, 404, 404, 404, 404, 401] },
  ];

  for (const row of table) {
    it(row.route, async () => {
      const statuses: number[] = [];
      for (const kind of kinds) {
        const res = await call(bearer(kind), row.path(), { method: row.method, body: row.body?.() });
        statuses.push(res.status);
        if (res.status >= 400) {
          expect(Object.keys(res.body), `${kind}: ${JSON.stringify(res.body)}`).toEqual(['error']);
          expect(typeof res.body.error).toBe('string');
        }
      }
      expect(statuses).toEqual(row.expected);
    });
  }

  it('lists the programs of the token’s organizations with its permissions; ?org= filters', async () => {
    const summary = (p: ProgramPayload, permissions: string[]) => ({
      program_uuid: p.program_uuid,
      program_key: p.program_key,
      organization_key: p.organization_key,
      permissions,
    });
    const operatorList = (await call(OPERATOR_TOKEN, '/api/v1/programs')).body as Array<{ program_uuid: string }>;
    expect(operatorList.map((p) => p.program_uuid)).toEqual(operatorList.map((p) => p.program_uuid).sort());
    expect(operatorList).toContainEqual(summary(P, ['read', 'write']));
    expect(new Set(operatorList.map((p: any) => p.organization_key))).toEqual(new Set([org, otherOrg]));

    expect((await call(tokens.read, '/api/v1/programs')).body).toEqual([summary(P, ['read'])]);
    expect((await call(tokens.write, '/api/v1/programs')).body).toEqual([summary(P, ['read', 'write'])]);
    expect((await call(tokens.write, `/api/v1/programs?org=${org}`)).body).toEqual([summary(P, ['read', 'write'])]);
    expect((await call(tokens.write, `/api/v1/programs?org=${otherOrg}`)).body).toEqual([]);
    const others = (await call(tokens.other, '/api/v1/programs')).body as any[];
    expect(others.map((p) => [p.organization_key, p.permissions])).toEqual([[otherOrg, ['read', 'write']]]);
    expect((await call(OPERATOR_TOKEN, `/api/v1/programs?org=${otherOrg}`)).body).toEqual(others);
  });

  it('answers 403 and 404 with messages that name the reason', async () => {
    const foreign = await call(tokens.other, `/api/v1/programs/${P.program_uuid}/enrollments`);
    expect(foreign).toEqual({
      status: 403,
      body: { error: `token uoy-writer does not cover the organization of program ${P.program_uuid}` },
    });
    const readOnly = await call(tokens.read, `/api/v1/programs/${P.program_uuid}/enrollments/upload`, {
      method: 'POST',
      body: csvForm('student_key,status\na,enrolled\n'),
    });
    expect(readOnly).toEqual({
      status: 403,
      body: { error: 'token uox-reader has read permission; this needs write' },
    });
    const operatorOnly = await call(tokens.write, `/api/v1/users/${userId}/course_enrollments`);
    expect(operatorOnly).toEqual({
      status: 403,
      body: { error: 'this route spans organizations: it needs an operator token' },
    });
    expect(await call(tokens.other, `/api/v1/jobs/${jobOfP}`)).toEqual({
      status: 404,
      body: { error: `unknown job ${jobOfP}` },
    });
    const revoked = await call(tokens.revoked, '/api/v1/programs');
    expect(revoked).toEqual({ status: 401, body: { error: 'a valid bearer token is required' } });
  });
});

describe('tokens on the command line', () => {
  it('creates a token printed once, keeps only its SHA-256, lists it without it, and revokes it', async () => {
    const org = newOrg('UoX');
    const P = await newProgram(t, { org });
    const created = await tokensCli(['create', 'cli-partner', '--org', org, '--org', 'UoQ', '--permission', 'read']);
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim();
    expect(created.stdout).toBe(`${token}\n`);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes, base64url
    expect(created.stderr).toContain('shown only this once');

    // The table holds the digest, never the token, in any column.
    const rows = await t.sql<{ row: string; token_hash: string }[]>`
      select row_to_json(a)::text as row, token_hash from api_tokens a where name = 'cli-partner'`;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.row).not.toContain(token);
    expect(rows[0]!.token_hash).toBe(createHash('sha256').update(token).digest('hex'));
    const anywhere = await t.sql`
      select table_name from information_schema.columns c
      where table_schema = 'public' and data_type in ('text', 'ARRAY', 'jsonb')
      group by table_name`;
    for (const { table_name } of anywhere) {
      const [hit] = await t.sql`select 1 from ${t.sql(table_name)} x where row_to_json(x)::text like ${`%${token}%`}`;
      expect(hit, table_name).toBeUndefined();
    }

    expect((await call(token, `/api/v1/programs/${P.program_uuid}`)).status).toBe(200);
    const taken = await tokensCli(['create', 'cli-partner', '--org', org, '--permission', 'write']);
    expect(taken.code).toBe(2);
    expect(taken.stderr).toContain('a token named cli-partner exists already');

    const listed = await tokensCli(['list', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).not.toContain(token);
    const entry = (JSON.parse(listed.stdout) as any[]).find((e) => e.name === 'cli-partner');
    expect(entry).toMatchObject({ organizations: [org, 'UoQ'], permission: 'read', revoked: null });
    expect(entry.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // The request above was its first use.
    expect(entry.last_used).toMatch(/^\d{4}-\d\d-\d\dT/);

    const revoked = await tokensCli(['revoke', 'cli-partner']);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await call(token, `/api/v1/programs/${P.program_uuid}`)).status).toBe(401);
  });
});

describe('revocation and last use', () => {
  it('a revoked token is refused by another process on the same database within a second', async () => {
    const org = newOrg('UoX');
    const P = await newProgram(t, { org });
    const { token } = await issueApiToken(t.sql, { name: `peer-${org}`, organizations: [org], permission: 'read' });
    const peer = await t.startPeer({ LOG_LEVEL: 'silent' });
    const route = `/api/v1/programs/${P.program_uuid}/enrollments`;
    expect((await call(token, route, {}, peer.url)).status).toBe(200);
    expect((await call(token, route)).status).toBe(200);

    await revokeApiTokenNamed(t.sql, `peer-${org}`);
    const revokedAt = performance.now();
    const refusedAfter = await waitFor(
      async () => ((await call(token, route, {}, peer.url)).status === 401 ? performance.now() - revokedAt : undefined),
      1_000,
      'the peer to refuse the revoked token',
    );
    expect(refusedAfter).toBeLessThan(1_000);
    expect((await call(token, route)).status).toBe(401);
  });

  it('records the last use at most once a minute per token', async () => {
    const org = newOrg('UoX');
    const { token } = await issueApiToken(t.sql, { name: `used-${org}`, organizations: [org], permission: 'read' });
    const lastUsed = async () =>
      (await t.sql<{ at: Date | null }[]>`select last_used_at as at from api_tokens where name = ${`used-${org}`}`)[0]!
        .at;
    expect(await lastUsed()).toBeNull();
    expect((await call(token, '/api/v1/programs')).status).toBe(200);
    const first = await waitFor(async () => (await lastUsed()) ?? undefined, 5_000, 'last_used_at');
    for (let i = 0; i < 5; i++) expect((await call(token, '/api/v1/programs')).status).toBe(200);
    expect(await lastUsed()).toEqual(first);
  });
});

describe('an upload with a partner token', () => {
  it('records requested_by api:<name> in the history and the job status', async () => {
    const org = newOrg('UoX');
    const P = await newProgram(t, { org });
    const { token } = await issueApiToken(t.sql, { name: 'uox-registrar', organizations: [org], permission: 'write' });
    const key = uniqueKey();
    const accepted = await call(token, `/api/v1/programs/${P.program_uuid}/enrollments/upload`, {
      method: 'POST',
      body: csvForm(`student_key,status\n${key},enrolled\n`),
    });
    expect(accepted.status).toBe(202);
    const jobId = accepted.body.job_id as string;
    const status = await waitFor(
      async () => {
        const res = await call(token, `/api/v1/jobs/${jobId}`);
        return res.body.state === 'Succeeded' || res.body.state === 'Failed' ? res.body : undefined;
      },
      60_000,
      'the upload to finish',
      25,
    );
    expect(status).toMatchObject({ job_id: jobId, state: 'Succeeded', requested_by: 'api:uox-registrar' });
    const history = await call(token, `/api/v1/programs/${P.program_uuid}/enrollments/${key}/history`);
    expect(history.status).toBe(200);
    expect(history.body).toEqual([
      expect.objectContaining({ entity: 'program_enrollment', job_id: jobId, requested_by: 'api:uox-registrar' }),
    ]);

    // Once BullMQ has forgotten the job, the status still names who made it.
    await t.queues.enrollments.remove(jobId);
    expect((await call(token, `/api/v1/jobs/${jobId}`)).body).toMatchObject({
      state: 'Succeeded',
      requested_by: 'api:uox-registrar',
    });
  });
});

describe('the program catalog reads', () => {
  /** The catalog entry the contract promises for an upsert-program payload as sent. */
  const expectedCatalog = (p: Record<string, any>) => ({
    program_uuid: p.program_uuid,
    program_key: p.program_key ?? null,
    organization_key: p.organization_key,
    curricula: p.curricula,
    courses: (p.courses ?? []).map((c: any) => ({
      course_key: c.course_key,
      external_course_key: c.external_course_key ?? null,
      modes: c.modes ?? ['audit', 'masters'],
    })),
  });

  it('answer exactly what the last upsert-program sent', async () => {
    const org = newOrg('UoX');
    const [a, b, c] = [newCourseKey(org, 'Z'), newCourseKey(org, 'A'), newCourseKey(org, 'M')];
    const first = programPayload({
      org,
      courses: [
        { course_key: a, external_course_key: 'Z-EXT', modes: ['verified', 'audit', 'masters'] },
        { course_key: b },
        { course_key: c, external_course_key: 'M-EXT' },
      ],
      curricula: [
        { is_active: false, course_keys: [c] },
        { is_active: true, course_keys: [a, b] },
      ],
    });
    await upsertProgram(t, first);
    const read = await call(OPERATOR_TOKEN, `/api/v1/programs/${first.program_uuid}`);
    expect(read).toEqual({ status: 200, body: expectedCatalog(first) });

    // Replaced: fewer courses in another order, new curricula, no program_key.
    const { program_key: _dropped, ...second } = {
      ...first,
      courses: [{ course_key: c, modes: ['masters'] }, { course_key: a }],
      curricula: [{ curriculum_uuid: randomUUID(), is_active: true, course_keys: [c, a] }],
    };
    completed(await t.run('enrollments', 'upsert-program', second));
    expect(await call(OPERATOR_TOKEN, `/api/v1/programs/${first.program_uuid}`)).toEqual({
      status: 200,
      body: expectedCatalog(second),
    });
    const listed = (await call(OPERATOR_TOKEN, `/api/v1/programs?org=${org}`)).body;
    expect(listed).toEqual([
      { program_uuid: first.program_uuid, program_key: null, organization_key: org, permissions: ['read', 'write'] },
    ]);
  });
});
