/**
 * `GET /openapi.json` (docs/contract.md "HTTP"): every route of the contract's table is in the
 * document, documented, and real answers of each route (successes and refusals) validate against
 * the schema the document gives for their status and content type.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  accountCreated,
  COURSE,
  completed,
  enrollCourseOk,
  enrollOk,
  newAccount,
  uniqueKey,
  useProgram,
} from './support/fixtures.js';
import { ADMIN, useTestService } from './support/service.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

/** The routes of docs/contract.md "HTTP" as this service serves them. */
const CONTRACT_ROUTES = [
  'get /healthz',
  'get /readyz',
  'get /metrics',
  'get /openapi.json',
  'get /admin/queues',
  'get /api/v1/programs',
  'get /api/v1/programs/{program_uuid}',
  'get /api/v1/programs/{program_uuid}/enrollments',
  'get /api/v1/programs/{program_uuid}/courses/{course_key}/enrollments',
  'get /api/v1/programs/{program_uuid}/enrollments/{student_key}/history',
  'get /api/v1/users/{user_id}/course_enrollments',
  'post /api/v1/programs/{program_uuid}/enrollments/upload',
  'post /api/v1/programs/{program_uuid}/course_enrollments/upload',
  'get /api/v1/jobs/{job_id}',
  'get /api/v1/jobs/{job_id}/result.csv',
];

type Doc = {
  openapi: string;
  paths: Record<
    string,
    Record<string, { summary: string; responses: Record<string, { content?: Record<string, { schema: object }> }> }>
  >;
};

describe('GET /openapi.json', () => {
  const t = useTestService();
  const program = useProgram(t);
  const ajv = addFormats(new Ajv2020({ strict: true, allErrors: true }));
  let doc: Doc;
  const checked = new Set<string>();

  beforeAll(async () => {
    const res = await fetch(`${t.url}/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as Doc;
  });

  /** Validates a real answer against the document's schema for its route, status and content type. */
  async function expectDocumented(method: string, template: string, res: Response): Promise<void> {
    const operation = doc.paths[template]?.[method];
    expect(operation, `${method} ${template} is in the document`).toBeDefined();
    const response = operation!.responses[String(res.status)];
    expect(response, `${method} ${template} documents status ${res.status}`).toBeDefined();
    const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const media = response!.content?.[type];
    expect(media, `${method} ${template} ${res.status} documents ${type}`).toBeDefined();
    const body = type === 'application/json' ? await res.json() : await res.text();
    const validate = ajv.compile(media!.schema);
    expect(validate(body), `${method} ${template} ${res.status}: ${JSON.stringify(validate.errors)}`).toBe(true);
    checked.add(`${method} ${template}`);
  }

  const api = (path: string, init: RequestInit = {}) => t.api(path, init);
  const form = (csv: string) => {
    const f = new FormData();
    f.append('file', new Blob([csv], { type: 'text/csv' }), 'upload.csv');
    return f;
  };

  it('is OpenAPI 3.1 and lists every route of the contract, each documented', () => {
    expect(doc.openapi).toBe('3.1.0');
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(listed.sort()).toEqual([...CONTRACT_ROUTES].sort());
    for (const [path, ops] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(ops)) expect(op.summary, `${method} ${path}`).not.toBe('undocumented');
  });

  it("validates every route's real answers", async () => {
    const P = program.program_uuid;
    // A realized learner with a course enrollment and the staff role, and a waiting one.
    const realized = uniqueKey();
    const waiting = uniqueKey();
    await enrollOk(t, P, [
      { student_key: realized, status: 'enrolled' },
      { student_key: waiting, status: 'pending' },
    ]);
    await enrollCourseOk(t, P, COURSE, [{ student_key: realized, status: 'active', course_staff: true }]);
    const account = newAccount();
    completed(
      await accountCreated(t, account, [{ organization_key: program.organization_key, external_user_key: realized }]),
    );

    await expectDocumented('get', '/healthz', await fetch(`${t.url}/healthz`));
    await expectDocumented('get', '/readyz', await fetch(`${t.url}/readyz`));
    await expectDocumented('get', '/metrics', await fetch(`${t.url}/metrics`));
    await expectDocumented('get', '/openapi.json', await fetch(`${t.url}/openapi.json`));
    const basic = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`;
    await expectDocumented(
      'get',
      '/admin/queues',
      await fetch(`${t.url}/admin/queues`, { headers: { authorization: basic } }),
    );
    await expectDocumented('get', '/admin/queues', await fetch(`${t.url}/admin/queues`));

    await expectDocumented('get', '/api/v1/programs', await api('/api/v1/programs'));
    await expectDocumented('get', '/api/v1/programs/{program_uuid}', await api(`/api/v1/programs/${P}`));
    await expectDocumented(
      'get',
      '/api/v1/programs/{program_uuid}',
      await api(`/api/v1/programs/${crypto.randomUUID()}`),
    );
    const list = '/api/v1/programs/{program_uuid}/enrollments';
    await expectDocumented('get', list, await api(`/api/v1/programs/${P}/enrollments?page_size=1`));
    await expectDocumented('get', list, await api(`/api/v1/programs/${P}/enrollments?page_size=0`));
    await expectDocumented('get', list, await api(`/api/v1/programs/${crypto.randomUUID()}/enrollments`));
    await expectDocumented('get', list, await fetch(`${t.url}/api/v1/programs/${P}/enrollments`));

    const course = '/api/v1/programs/{program_uuid}/courses/{course_key}/enrollments';
    await expectDocumented(
      'get',
      course,
      await api(`/api/v1/programs/${P}/courses/${encodeURIComponent(COURSE)}/enrollments`),
    );
    await expectDocumented('get', course, await api(`/api/v1/programs/${P}/courses/nope/enrollments`));

    const history = '/api/v1/programs/{program_uuid}/enrollments/{student_key}/history';
    await expectDocumented('get', history, await api(`/api/v1/programs/${P}/enrollments/${realized}/history`));
    await expectDocumented('get', history, await api(`/api/v1/programs/${P}/enrollments/nobody-${realized}/history`));

    const users = '/api/v1/users/{user_id}/course_enrollments';
    await expectDocumented('get', users, await api(`/api/v1/users/${account.user_id}/course_enrollments`));
    await expectDocumented('get', users, await api('/api/v1/users/0/course_enrollments'));

    const upload = '/api/v1/programs/{program_uuid}/enrollments/upload';
    const accepted = await api(`/api/v1/programs/${P}/enrollments/upload`, {
      method: 'POST',
      body: form(`student_key,status\n${uniqueKey()},enrolled\n`),
    });
    const { job_id: jobId } = (await accepted.clone().json()) as { job_id: string };
    await expectDocumented('post', upload, accepted);
    await expectDocumented(
      'post',
      upload,
      await api(`/api/v1/programs/${P}/enrollments/upload`, { method: 'POST', body: form('student_key\nx\n') }),
    );
    await expectDocumented(
      'post',
      upload,
      await api(`/api/v1/programs/${crypto.randomUUID()}/enrollments/upload`, {
        method: 'POST',
        body: form('student_key,status\n'),
      }),
    );
    await expectDocumented(
      'post',
      upload,
      await api(`/api/v1/programs/${P}/enrollments/upload`, {
        method: 'POST',
        body: form(`student_key,status\n${'x'.repeat(6 * 1024 * 1024)},enrolled\n`),
      }),
    );
    await expectDocumented(
      'post',
      '/api/v1/programs/{program_uuid}/course_enrollments/upload',
      await api(`/api/v1/programs/${P}/course_enrollments/upload`, {
        method: 'POST',
        body: form(`student_key,course_id,status\n${realized},${COURSE},active\n`),
      }),
    );

    const job = '/api/v1/jobs/{job_id}';
    for (;;) {
      const res = await api(`/api/v1/jobs/${jobId}`);
      const body = (await res.clone().json()) as { state: string };
      await expectDocumented('get', job, res);
      if (body.state === 'Succeeded') break;
      expect(['Pending', 'In Progress']).toContain(body.state);
      await new Promise((r) => setTimeout(r, 50));
    }
    await expectDocumented('get', job, await api('/api/v1/jobs/no-such-job'));
    await expectDocumented('get', '/api/v1/jobs/{job_id}/result.csv', await api(`/api/v1/jobs/${jobId}/result.csv`));
    await expectDocumented('get', '/api/v1/jobs/{job_id}/result.csv', await api('/api/v1/jobs/no-such-job/result.csv'));

    expect([...checked].sort()).toEqual([...CONTRACT_ROUTES].sort());
  });
});
