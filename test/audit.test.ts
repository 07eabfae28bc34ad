/**
 * Audit: one access log line per HTTP request, without tokens or keys; history rows name the queue
 * of their job and, for PCE and CE rows, their course.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Service, startService } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import {
  accountCreated,
  COURSE,
  ceOf,
  completed,
  courseEnrollmentChanged,
  enrollCourseOk,
  enrollOk,
  historyOf,
  newAccount,
  uniqueKey,
  useProgram,
} from './support/fixtures.js';
import { API_TOKEN, createTestDatabase, serviceEnv, useTestService } from './support/service.js';

describe('access log', () => {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  let service: Service;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const database = await createTestDatabase();
    drop = database.drop;
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) {
          raw.push(line);
          lines.push(JSON.parse(line) as Record<string, unknown>);
        }
        done();
      },
    });
    const config = loadConfig({
      ...serviceEnv(database.url, `t${randomBytes(5).toString('hex')}`),
      API_TOKENS: API_TOKEN,
      LOG_LEVEL: 'info',
    });
    service = await startService(config, { logger: pino({ level: 'info' }, sink) });
  });
  afterAll(async () => {
    await service?.stop();
    await drop?.();
  });

  const requestLines = () => lines.filter((l) => l.msg === 'request');

  it('logs method, route pattern, status and time of each API request, never the token or the key in the URL', async () => {
    const key = `secret-key-${randomUUID()}`;
    const path = `/api/v1/programs/${randomUUID()}/enrollments/${key}/history`;
    const answered = await fetch(`${service.url}${path}`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
    expect(answered.status).toBe(404);
    const refused = await fetch(`${service.url}${path}`, { headers: { authorization: 'Bearer wrong-token' } });
    expect(refused.status).toBe(401);
    expect((await fetch(`${service.url}/openapi.json`)).status).toBe(200);

    const logged = requestLines();
    expect(logged.map(({ method, route, status }) => ({ method, route, status }))).toEqual([
      { method: 'GET', route: '/api/v1/programs/:program_uuid/enrollments/:student_key/history', status: 404 },
      { method: 'GET', route: '/api/v1/programs/:program_uuid/enrollments/:student_key/history', status: 401 },
      { method: 'GET', route: '/openapi.json', status: 200 },
    ]);
    for (const line of logged) {
      expect(typeof line.ms).toBe('number');
      expect(line.ms as number).toBeGreaterThanOrEqual(0);
    }
    const text = raw.join('\n');
    expect(text).not.toContain(API_TOKEN);
    expect(text).not.toContain('wrong-token');
    expect(text).not.toContain(key);
  });

  it('leaves out the probes and scrapes', async () => {
    const before = requestLines().length;
    for (const path of ['/healthz', '/readyz', '/metrics'])
      expect((await fetch(`${service.url}${path}`)).status).toBe(200);
    expect((await fetch(`${service.url}/no/such/path`)).status).toBe(404);
    expect(
      requestLines()
        .slice(before)
        .map((l) => [l.route, l.status]),
    ).toEqual([[null, 404]]);
  });
});

describe('history rows', () => {
  const t = useTestService();
  const program = useProgram(t);

  it('name the queue of their job, and PCE and CE rows their course', async () => {
    const key = uniqueKey();
    await enrollOk(t, program.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    await enrollCourseOk(t, program.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    const account = newAccount();
    const linked = completed(
      await accountCreated(t, account, [{ organization_key: program.organization_key, external_user_key: key }]),
    );
    expect(linked.linked).toHaveLength(1);

    const res = await t.api(`/api/v1/programs/${program.program_uuid}/enrollments/${key}/history`);
    expect(res.status).toBe(200);
    const rows = (await res.json()) as Array<Record<string, unknown>>;
    expect(
      rows.map(({ entity, action, changes, queue, course_key }) => ({
        entity,
        action,
        fields: Object.keys(changes as object).sort(),
        queue,
        course_key,
      })),
    ).toEqual([
      {
        entity: 'program_enrollment',
        action: 'created',
        fields: ['curriculum_uuid', 'status', 'student_key'],
        queue: 'enrollments',
        course_key: null,
      },
      {
        entity: 'program_course_enrollment',
        action: 'created',
        fields: ['course_key', 'status'],
        queue: 'enrollments',
        course_key: COURSE,
      },
      { entity: 'program_enrollment', action: 'changed', fields: ['user_id'], queue: 'accounts', course_key: null },
      // Realization: the row that only links the CE by its internal id names the course.
      {
        entity: 'program_course_enrollment',
        action: 'changed',
        fields: ['course_enrollment_id'],
        queue: 'accounts',
        course_key: COURSE,
      },
    ]);

    // The LMS's word on the CE: a `changed` row of the CE itself, naming its course.
    await courseEnrollmentChanged(t, {
      user_id: account.user_id,
      course_key: COURSE,
      mode: 'verified',
      is_active: true,
    });
    const ce = (await ceOf(t, account.user_id, COURSE))!;
    const ceRows = await t.sql<{ action: string; queue: string; course_key: string }[]>`
      select action, queue, course_key from history where entity = 'course_enrollment' and entity_id = ${ce.id} order by id`;
    expect(ceRows.map((r) => ({ ...r }))).toEqual([
      { action: 'created', queue: 'accounts', course_key: COURSE },
      { action: 'changed', queue: 'accounts', course_key: COURSE },
    ]);
    expect((await historyOf(t, 'course_enrollment', ce.id)).length).toBe(2);
  });
});
