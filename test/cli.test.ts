/**
 * The `program-enrollments` CLI: the pure CSV/argument → payload mapping, then the real command
 * run as a child process against a running service (real Redis and Postgres), as an operator
 * runs it. CONTRACT.md is the reference for payloads and results.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { describeLinkResult, describeWriteResult } from '../src/cli/output.js';
import {
  courseEnrollmentsFromCsv,
  courseEnrollmentsPayload,
  InputError,
  linksFromArguments,
  programEnrollmentsFromCsv,
  programEnrollmentsPayload,
} from '../src/cli/payloads.js';
import { deleteKeysUnder, useTestService } from './support/service.js';

const root = path.resolve(import.meta.dirname, '..');
const PROGRAM_UUID = '00000000-1111-2222-3333-444444444444';

describe('CSV and arguments to payloads', () => {
  it('trims and case-folds headers, drops extra columns, skips blank lines, keeps quoted fields', () => {
    const csv =
      '\uFEFF Student_Key ,STATUS,Notes,curriculum_uuid\r\n\r\nabc1,enrolled,x,\n , ,\n"a,b",pending,,AAAAAAAA-1111-2222-3333-444444444444\n';
    const { records, lines } = programEnrollmentsFromCsv(csv);
    expect(records).toEqual([
      { student_key: 'abc1', status: 'enrolled' },
      { student_key: 'a,b', status: 'pending', curriculum_uuid: 'AAAAAAAA-1111-2222-3333-444444444444' },
    ]);
    expect(lines).toEqual([3, 5]);
  });

  it('names missing headers and the line of missing data, as the HTTP upload does', () => {
    expect(() => programEnrollmentsFromCsv('student_key,state\na,enrolled\n')).toThrow(
      new InputError('CSV is missing headers [status]'),
    );
    expect(() => programEnrollmentsFromCsv('')).toThrow('CSV is missing headers [student_key, status]');
    expect(() => programEnrollmentsFromCsv('student_key,status\na,enrolled\n\nb,\n')).toThrow(
      'CSV is missing data at line 4',
    );
  });

  it('maps course_staff true/false/empty and refuses anything else', () => {
    const { records } = courseEnrollmentsFromCsv(
      'student_key,status,course_staff\na,active,true\nb,inactive,false\nc,active,\n',
    );
    expect(records).toEqual([
      { student_key: 'a', status: 'active', course_staff: true },
      { student_key: 'b', status: 'inactive', course_staff: false },
      { student_key: 'c', status: 'active' },
    ]);
    expect(() => courseEnrollmentsFromCsv('student_key,status,course_staff\na,active,yes\n')).toThrow(
      'CSV has an invalid course_staff value at line 2',
    );
  });

  it('builds wire payloads and reports schema problems by CSV line before any job exists', () => {
    const { records, lines } = programEnrollmentsFromCsv('student_key,status\nabc1,enrolled\n');
    expect(
      programEnrollmentsPayload({ programUuid: PROGRAM_UUID, action: 'create', records, requestedBy: 'ops:me', lines }),
    ).toEqual({
      program_uuid: PROGRAM_UUID,
      action: 'create',
      enrollments: [{ student_key: 'abc1', status: 'enrolled' }],
      requested_by: 'ops:me',
    });
    const long = programEnrollmentsFromCsv(`student_key,status\nok,enrolled\n${'k'.repeat(256)},enrolled\n`);
    expect(() => programEnrollmentsPayload({ programUuid: PROGRAM_UUID, action: 'create', ...long })).toThrow(
      'invalid payload: line 3.student_key: must be at most 255 characters',
    );
    expect(() =>
      courseEnrollmentsPayload({ programUuid: 'not-a-uuid', courseKey: 'c', action: 'create', records: [] }),
    ).toThrow(/^invalid payload: program_uuid: /);
  });

  it('checks link arguments like the Open edX management command', () => {
    expect(linksFromArguments([' abc1 : jdoe ', 'x:y'])).toEqual([
      { student_key: 'abc1', username: 'jdoe' },
      { student_key: 'x', username: 'y' },
    ]);
    for (const bad of ['abc1', 'a:b:c', ':jdoe', 'abc1: ']) {
      expect(() => linksFromArguments([bad])).toThrow(
        `incorrectly formatted argument '${bad}', must be in form <external user key>:<lms username>`,
      );
    }
  });

  it('prints counts sorted, and link errors', () => {
    expect(describeWriteResult({ code: 207, results: {}, counts: { pending: 1, 'invalid-status': 2 } })).toEqual([
      'code 207',
      '  invalid-status  2',
      '  pending         1',
    ]);
    expect(describeLinkResult({ errors: {} }, 2)).toEqual(['every link held']);
    expect(describeLinkResult({ errors: { b: 'no', a: 'nope' } }, 3)).toEqual([
      '2 of 3 links failed',
      '  a: nope',
      '  b: no',
    ]);
  });
});

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('the CLI against a running service', () => {
  const t = useTestService();
  let dir: string;
  let program: { program_uuid: string; organization_key: string; course_key: string; external_course_key: string };

  const cli = (
    args: string[],
    env: Record<string, string | undefined> = {},
    entry = 'src/cli.ts',
    input?: string,
  ): Promise<CliRun> =>
    new Promise((resolve, reject) => {
      const childEnv: NodeJS.ProcessEnv = {
        ...process.env,
        REDIS_URL: inject('redisUrl'),
        QUEUE_PREFIX: t.prefix,
        ...env,
      };
      delete childEnv.REDIS_CLUSTER_NODES;
      for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
      const execArgs = entry.endsWith('cli.ts') ? ['--import', 'tsx', entry] : [entry];
      const child = spawn(process.execPath, [...execArgs, ...args], {
        cwd: root,
        env: childEnv,
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      if (input !== undefined) child.stdin!.end(input);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  const file = (name: string, text: string): string => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  const peRows = async () =>
    (
      await t.sql<{ student_key: string; status: string; user_id: string | null }[]>`
      select student_key, status, user_id from program_enrollments
      where program_uuid = ${program.program_uuid} and student_key not like 'cli-bulk-%' order by student_key`
    ).map((r) => ({
      ...r,
      user_id: r.user_id === null ? null : Number(r.user_id),
    }));

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'pe-cli-'));
    const uuid = randomUUID();
    program = {
      program_uuid: uuid,
      organization_key: `UoX-${uuid.slice(0, 6)}`,
      course_key: `course-v1:UoX+CLI${uuid.slice(0, 4)}+2026`,
      external_course_key: `CLI-${uuid.slice(0, 4)}`,
    };
    const done = await t.run('enrollments', 'upsert-program', {
      program_uuid: program.program_uuid,
      organization_key: program.organization_key,
      curricula: [{ curriculum_uuid: randomUUID(), is_active: true, course_keys: [program.course_key] }],
      courses: [{ course_key: program.course_key, external_course_key: program.external_course_key }],
    });
    expect(done.state, done.failedReason).toBe('completed');
  });

  afterAll(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('enroll: applies a CSV, prints code and counts, exits 3 for a 207', async () => {
    const csv = file('program.csv', 'Student_Key,Status\ncli-a1,enrolled\ncli-a2,pending\n\ncli-a3,graduated\n');
    const run = await cli(['enroll', program.program_uuid, csv, '--requested-by', 'ops:cli']);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stdout.replace(/^job \S+ /, 'job <id> ')).toBe(
      'job <id> completed\ncode 207\n  enrolled        1\n  invalid-status  1\n  pending         1\n',
    );
    expect(run.stderr).toContain('(write-program-enrollments, 3 records)');
    expect(await peRows()).toEqual([
      { student_key: 'cli-a1', status: 'enrolled', user_id: null },
      { student_key: 'cli-a2', status: 'pending', user_id: null },
    ]);
    const history = await t.sql`
      select distinct h.requested_by from history h join program_enrollments pe on pe.id = h.program_enrollment_id
      where pe.program_uuid = ${program.program_uuid}`;
    expect(history.map((h) => h.requested_by)).toEqual(['ops:cli']);
  });

  it('enroll --action update: keys not in the program are not-in-program', async () => {
    const csv = file('update.csv', 'student_key,status\ncli-a1,suspended\ncli-nobody,enrolled\n');
    const run = await cli(['enroll', program.program_uuid, csv, '--action', 'update', '--json']);
    expect(run.code, run.stderr).toBe(3);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({
      name: 'write-program-enrollments',
      state: 'completed',
      queue: 'enrollments',
      failed_reason: null,
    });
    expect(out.result).toEqual({
      code: 207,
      results: { 'cli-a1': 'suspended', 'cli-nobody': 'not-in-program' },
      counts: { suspended: 1, 'not-in-program': 1 },
    });
    expect((await peRows()).find((r) => r.student_key === 'cli-a1')?.status).toBe('suspended');
  });

  it('enroll: shows progress as plain lines when not on a terminal, ending at done == total', async () => {
    const keys = Array.from({ length: 2_500 }, (_, i) => `cli-bulk-${i}`);
    const csv = file('bulk.csv', `student_key,status\n${keys.map((k) => `${k},enrolled`).join('\n')}\n`);
    const run = await cli(['enroll', program.program_uuid, csv]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('progress 2500/2500 (100%)');
    expect(run.stderr).not.toContain('\u001b['); // no bar, no cursor control codes in logs
    expect(run.stdout).toContain('code 200\n  enrolled  2500\n');
    const [{ n }] = await t.sql<
      [{ n: number }]
    >`select count(*)::int as n from program_enrollments where program_uuid = ${program.program_uuid} and student_key like 'cli-bulk-%'`;
    expect(n).toBe(2_500);
  });

  it('enroll-course: maps course_staff, accepts the external course key, records pending roles', async () => {
    const csv = file('course.csv', 'student_key,status,course_staff\ncli-a1,active,true\ncli-a2,inactive,\n');
    const run = await cli(['enroll-course', program.program_uuid, program.external_course_key, csv]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('code 200\n  active    1\n  inactive  1\n');
    const pces = await t.sql`
      select pe.student_key, pce.course_key, pce.status, (pra.program_course_enrollment_id is not null) as pending_staff
      from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id
      left join pending_role_assignments pra on pra.program_course_enrollment_id = pce.id
      where pe.program_uuid = ${program.program_uuid} order by pe.student_key`;
    expect(pces.map((r) => ({ ...r }))).toEqual([
      { student_key: 'cli-a1', course_key: program.course_key, status: 'active', pending_staff: true },
      { student_key: 'cli-a2', course_key: program.course_key, status: 'inactive', pending_staff: false },
    ]);
  });

  it('reads the CSV from stdin when the file is -', async () => {
    const run = await cli(
      ['enroll', program.program_uuid, '-'],
      {},
      'src/cli.ts',
      'student_key,status\ncli-stdin,ended\n',
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('code 200\n  ended  1\n');
    expect((await peRows()).find((r) => r.student_key === 'cli-stdin')?.status).toBe('ended');
  });

  it('a failed job exits 1 with its failed reason', async () => {
    const csv = file('course2.csv', 'student_key,status\ncli-a1,active\n');
    const run = await cli(['enroll-course', program.program_uuid, 'course-v1:Nope+X+1', csv]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`failed: course course-v1:Nope+X+1 is not in program ${program.program_uuid}`);
  });

  it('bad input exits 2 without adding a job', async () => {
    const missing = await cli(['enroll', program.program_uuid, file('bad.csv', 'student_key\nabc\n')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('CSV is missing headers [status]');
    const staff = await cli([
      'enroll-course',
      program.program_uuid,
      program.course_key,
      file('bad2.csv', 'student_key,status,course_staff\na,active,maybe\n'),
    ]);
    expect(staff.code).toBe(2);
    expect(staff.stderr).toContain('CSV has an invalid course_staff value at line 2');
    expect(await t.queues.enrollments.getJobCounts('waiting', 'active', 'failed')).toMatchObject({
      waiting: 0,
      active: 0,
    });
  });

  it("link: refuses a badly formatted argument with exit 2 and the management command's message", async () => {
    const run = await cli(['link', program.program_uuid, 'cli-a1:user1', 'cli-a2-without-username']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      "incorrectly formatted argument 'cli-a2-without-username', must be in form <external user key>:<lms username>",
    );
    expect(run.stdout).toBe('');
  });

  it('link: links a waiting enrollment, prints the errors map, exits 1 when a link fails', async () => {
    const userId = 7_000_000 + Math.floor(Math.random() * 1_000_000);
    const username = `cli-user-${userId}`;
    const account = await t.run('accounts', 'account-created', {
      event_id: randomUUID(),
      user_id: userId,
      username,
      identities: [],
    });
    expect(account.state, account.failedReason).toBe('completed');

    const ok = await cli(['link', program.program_uuid, `cli-a1:${username}`]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/completed\nevery link held\n$/);
    expect((await peRows()).find((r) => r.student_key === 'cli-a1')?.user_id).toBe(userId);

    const bad = await cli(['link', program.program_uuid, 'cli-a2:nobody-here', `cli-ghost:${username}`]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('2 of 2 links failed\n');
    expect(bad.stdout).toContain('  cli-a2: No user found with username nobody-here\n');
    expect(bad.stdout).toContain(
      `  cli-ghost: No program enrollment found for program uuid=${program.program_uuid} and external student key=cli-ghost\n`,
    );

    const retire = await cli(['retire', String(userId)]);
    expect(retire.code, retire.stderr).toBe(0);
    expect(retire.stdout).toContain('retired 1 program enrollments');
    const [pe] = await t.sql`select student_key from program_enrollments where user_id = ${userId}`;
    expect(pe?.student_key).toMatch(/^retired_[0-9a-f]{64}$/);
  });

  it('--no-wait prints the job id; status finds it; the same --job-id again follows the first job', async () => {
    const jobId = `cli-${randomUUID()}`;
    const csv = file('nowait.csv', 'student_key,status\ncli-nowait,enrolled\n');
    const added = await cli(['enroll', program.program_uuid, csv, '--no-wait', '--job-id', jobId]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toBe(`${jobId}\n`);

    const again = await cli(['enroll', program.program_uuid, csv, '--job-id', jobId]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`job ${jobId} already exists in queue enrollments`);
    expect(again.stdout).toContain('code 200\n  enrolled  1\n');

    const status = await cli(['status', jobId]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('queue:    enrollments\n');
    expect(status.stdout).toContain('name:     write-program-enrollments\n');
    expect(status.stdout).toContain('state:    completed\n');
    expect(status.stdout).toContain('progress: 1/1 (100%)\n');
    expect(status.stdout).toContain('result:   code 200\n  enrolled  1\n');

    const unknown = await cli(['status', 'no-such-job']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no job no-such-job in queues enrollments, accounts');
  });

  it('upsert-program and expire, through the package bin', async () => {
    const uuid = randomUUID();
    const json = file(
      'program.json',
      JSON.stringify({
        program_uuid: uuid,
        program_key: 'cli-program',
        organization_key: 'UoX-cli',
        curricula: [{ curriculum_uuid: randomUUID(), is_active: true, course_keys: ['course-v1:UoX+CLI2+2026'] }],
      }),
    );
    const upsert = await cli(['upsert-program', json], {}, 'bin/program-enrollments.js');
    expect(upsert.code, upsert.stderr).toBe(0);
    expect(upsert.stdout).toContain(`program ${uuid} loaded`);
    const [row] = await t.sql`select organization_key from programs where program_uuid = ${uuid}`;
    expect(row?.organization_key).toBe('UoX-cli');

    // Nothing here is 10,000 days old; the count proves the job ran with the given days.
    const expire = await cli(['expire', '--days', '10000', '--json'], {}, 'bin/program-enrollments.js');
    expect(expire.code, expire.stderr).toBe(0);
    expect(JSON.parse(expire.stdout).result).toEqual({
      removed: { program_enrollments: 0, program_course_enrollments: 0 },
    });
  });

  it('enroll: exits 1 when no record applied (422), and --results writes the per-learner results', async () => {
    const results = path.join(dir, 'results.csv');
    const csv = file('invalid.csv', 'student_key,status\ncli-r2,graduated\ncli-r1,enrolled-ish\n');
    const run = await cli(['enroll', program.program_uuid, csv, '--results', results]);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toContain('code 422\n');
    expect(run.stderr).toContain(`wrote the per-learner results to ${results}`);
    expect(readFileSync(results, 'utf8')).toBe(
      'student_key,status\r\ncli-r1,invalid-status\r\ncli-r2,invalid-status\r\n',
    );
  });

  it('--timeout: says when no worker consumes the queue, gives up with 124 and prints the same JSON shape', async () => {
    const prefix = `${t.prefix}-nobody`;
    const csv = file('nobody.csv', 'student_key,status\ncli-nobody,enrolled\n');
    const started = Date.now();
    const run = await cli(['enroll', program.program_uuid, csv, '--timeout', '1', '--json'], { QUEUE_PREFIX: prefix });
    expect(run.code, run.stderr).toBe(124);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(run.stderr).toContain(`no worker is consuming queue enrollments under prefix ${prefix}`);
    expect(run.stderr).toMatch(/did not finish within 1 s \(no worker consumes the queue\); it goes on/);
    const out = JSON.parse(run.stdout);
    expect(Object.keys(out)).toEqual(['job_id', 'queue', 'name', 'state', 'progress', 'result', 'failed_reason']);
    expect(out).toMatchObject({
      queue: 'enrollments',
      name: 'write-program-enrollments',
      state: 'waiting',
      result: null,
    });
    const redis = new Redis(inject('redisUrl'));
    await deleteKeysUnder(redis, prefix);
    await redis.quit();
  });

  it('status --json prints one object with the jobs found', async () => {
    const jobId = `cli-${randomUUID()}`;
    const added = await cli(['expire', '--days', '10000', '--job-id', jobId, '--json']);
    expect(added.code, added.stderr).toBe(0);
    const status = await cli(['status', jobId, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toEqual({ job_id: jobId, jobs: [JSON.parse(added.stdout)] });
    const unknown = await cli(['status', 'no-such-job', '--json']);
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stdout)).toEqual({ job_id: 'no-such-job', jobs: [] });
  });

  it('names REDIS_URL when it is unset', async () => {
    const run = await cli(['status', '1'], { REDIS_URL: undefined });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('REDIS_URL is not set');
  });
});
