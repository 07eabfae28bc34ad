/**
 * Answers of the HTTP side that differ from CONTRACT.md "HTTP" and "Details that callers rely on",
 * black-box against the running service.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newProgram } from '../support/fixtures.js';
import { ADMIN, startTestService, type TestService } from '../support/service.js';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => {
  await t?.stop();
});

function csvForm(csv: string): FormData {
  const form = new FormData();
  form.append('file', new Blob([csv], { type: 'text/csv' }), 'upload.csv');
  return form;
}

describe('Jobs over HTTP', () => {
  // CONTRACT "Jobs over HTTP": `Canceled` means the job was removed before it finished.
  it('reports an upload job removed before it finished as Canceled, not as an unknown job', async () => {
    const program = await newProgram(t);
    await t.queues.enrollments.pause();
    try {
      const accepted = await t.api(`/api/v1/programs/${program.program_uuid}/enrollments/upload`, {
        method: 'POST',
        body: csvForm('student_key,status\nc1,enrolled\n'),
      });
      expect(accepted.status).toBe(202);
      const { job_id } = (await accepted.json()) as { job_id: string };
      expect(((await (await t.api(`/api/v1/jobs/${job_id}`)).json()) as { state: string }).state).toBe('Pending');

      await t.queues.enrollments.remove(job_id);

      const res = await t.api(`/api/v1/jobs/${job_id}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ job_id, state: 'Canceled', result: null, text: null });
      expect((await t.api(`/api/v1/jobs/${job_id}/result.csv`)).status).toBe(404);
    } finally {
      await t.queues.enrollments.resume();
    }
  });
});

describe('history', () => {
  // CONTRACT "HTTP": history answers 404 when there is none; a key Postgres cannot store names no PE.
  it('answers 404, not 500, for a student key holding a NUL character', async () => {
    const program = await newProgram(t);
    const res = await t.api(
      `/api/v1/programs/${program.program_uuid}/enrollments/${encodeURIComponent('a\u0000b')}/history`,
    );
    expect(res.status).toBe(404);
    expect(await res.json()).toHaveProperty('error');
  });
});

describe('dashboard refusals', () => {
  // CONTRACT "HTTP": errors are JSON { "error": "<message>" }; "Dashboard": refusals carry WWW-Authenticate: Basic.
  it('answer 401 with WWW-Authenticate: Basic and an { error: <message> } body', async () => {
    const wrong = { authorization: `Basic ${Buffer.from(`${ADMIN.user}:nope`).toString('base64')}` };
    for (const [path, headers] of [
      ['/admin/queues', {}],
      ['/admin/queues/api/queues', wrong],
    ] as const) {
      const res = await fetch(`${t.url}${path}`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
      const body = (await res.json()) as { error: unknown };
      expect(typeof body.error, JSON.stringify(body)).toBe('string');
    }
  });
});

describe('upload line numbers', () => {
  // CONTRACT "HTTP": `CSV is missing data at line <n>` with the header as line 1.
  it('counts the header as line 1 even when blank lines come before it', async () => {
    const program = await newProgram(t);
    const res = await t.api(`/api/v1/programs/${program.program_uuid}/enrollments/upload`, {
      method: 'POST',
      body: csvForm('\n\nstudent_key,status\nk1,enrolled\nk2,\n'),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'CSV is missing data at line 3' });
  });
});

describe('users', () => {
  // CONTRACT "HTTP": 404 for an unknown account. Other routes answer 404 for a malformed id
  // (a program uuid that is not a uuid); only page_size and uploads are 400s in the contract.
  it('answers 404 for a user id that names no account because it is not a positive integer', async () => {
    for (const id of ['0', 'abc', '9007199254740992']) {
      const res = await t.api(`/api/v1/users/${id}/course_enrollments`);
      expect(res.status, id).toBe(404);
    }
  });
});

describe('auth on every spelling of /api and /admin paths (coverage)', () => {
  it('refuses without credentials whatever the method, trailing slash or percent-encoding', async () => {
    const program = await newProgram(t);
    const apiPaths = [
      `/api/v1/programs/${program.program_uuid}/enrollments/`,
      `/%61pi/v1/programs/${program.program_uuid}/enrollments`,
      `/api/v1/programs/${program.program_uuid}/%65nrollments`,
      `/api/v1/jobs/x/result.csv/`,
      `/api/v1/users/1/course_enrollments;x`,
      '/api/v1/nothing-here',
    ];
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'POST', 'DELETE']) {
      for (const path of apiPaths)
        expect((await fetch(`${t.url}${path}`, { method })).status, `${method} ${path}`).toBe(401);
    }
    for (const path of ['/API/v1/jobs/x', '//api/v1/jobs/x', '/api%2Fv1/jobs/x']) {
      expect((await fetch(`${t.url}${path}`)).status, path).toBe(404);
    }
    for (const method of ['GET', 'HEAD']) {
      for (const path of [
        '/admin/queues/',
        '/admin/%71ueues',
        '/admin/queues/api/queues/',
        '/admin/queues/static/x.js',
      ]) {
        const res = await fetch(`${t.url}${path}`, { method });
        expect(res.status, `${method} ${path}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
      }
    }
  });
});
