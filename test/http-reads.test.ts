import http from 'node:http';
import { type Job, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Service, startService } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { compareCodePoints } from '../src/domain/order.js';
import { csvField } from '../src/http/csv.js';
import { jobStatusState } from '../src/http/job-status.js';
import { newPrefix, type PrefixQueues, queuesOn } from './support/extra-services.js';
import { API_TOKEN, createTestDatabase, serviceEnv, useTestService, waitFor } from './support/service.js';

const ORG = 'UoX';
const CS101 = 'course-v1:UoX+CS101+2026';
/** A legacy course key: its slashes must travel percent-encoded in one path segment. */
const CS102 = 'UoX/CS102/2026';
/** Listed by the catalog, but only in an inactive curriculum: not in the program. */
const CS999 = 'course-v1:UoX+CS999+2026';

const PROGRAM = '11111111-2222-3333-4444-555555555555';
const CURRICULUM = 'aaaaaaaa-1111-2222-3333-444444444444';
const OLD_CURRICULUM = 'aaaaaaaa-1111-2222-3333-999999999999';
const PAGED = '22222222-2222-3333-4444-555555555555';
const PAGED_CURRICULUM = 'bbbbbbbb-1111-2222-3333-444444444444';
const BIG = '33333333-2222-3333-4444-555555555555';
const BIG_CURRICULUM = 'cccccccc-1111-2222-3333-444444444444';

const enc = encodeURIComponent;

interface Envelope<T> {
  next: string | null;
  previous: string | null;
  results: T[];
}

describe('read API', () => {
  const t = useTestService();
  /** PE ids by student key. */
  const pe: Record<string, number> = {};

  async function json<T = any>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
    const res = await t.api(path, init);
    return { status: res.status, body: (await res.json()) as T };
  }

  /** Follows an absolute `next`/`previous` URL (built from the Host the test sent) on the service. */
  async function follow<T>(url: string): Promise<Envelope<T>> {
    const { pathname, search } = new URL(url);
    const { status, body } = await json<Envelope<T>>(`${pathname}${search}`);
    expect(status).toBe(200);
    return body;
  }

  async function insertAccount(userId: number, username: string, email: string | null) {
    await t.sql`insert into accounts (user_id, username, email) values (${userId}, ${username}, ${email})`;
  }

  async function insertPe(
    programUuid: string,
    studentKey: string,
    curriculum: string,
    status: string,
    userId: number | null,
  ) {
    const [row] = await t.sql<{ id: number }[]>`
      insert into program_enrollments (program_uuid, organization_key, student_key, user_id, curriculum_uuid, status)
      values (${programUuid}, ${ORG}, ${studentKey}, ${userId}, ${curriculum}, ${status})
      returning id::int as id`;
    pe[studentKey] = row!.id;
    return row!.id;
  }

  async function insertCe(userId: number, courseKey: string, mode: string, isActive: boolean) {
    const [row] = await t.sql<{ id: number }[]>`
      insert into course_enrollments (user_id, course_key, mode, is_active)
      values (${userId}, ${courseKey}, ${mode}, ${isActive}) returning id::int as id`;
    return row!.id;
  }

  /** A PCE copies its learner (organization, lower-cased key) from its PE. */
  async function insertPce(peId: number, courseKey: string, status: string, ceId: number | null) {
    const [row] = await t.sql<{ id: number }[]>`
      insert into program_course_enrollments
        (program_enrollment_id, course_key, status, course_enrollment_id, organization_key, student_key_lower)
      select id, ${courseKey}, ${status}, ${ceId}, organization_key, student_key_lower
      from program_enrollments where id = ${peId}
      returning id::int as id`;
    return row!.id;
  }

  async function insertHistory(
    peId: number | null,
    entity: string,
    action: string,
    changes: Record<string, [unknown, unknown]>,
    at: string,
    jobId: string | null,
    requestedBy: string | null,
  ) {
    await t.sql`
      insert into history (at, entity, entity_id, program_enrollment_id, action, changes, job_id, queue, requested_by, course_key)
      values (${at}, ${entity}, ${peId ?? 0}, ${peId}, ${action}, ${t.sql.json(changes as any)}, ${jobId},
              ${jobId === null ? null : 'enrollments'}, ${requestedBy}, ${(changes.course_key?.[1] as string | undefined) ?? null})`;
  }

  beforeAll(async () => {
    const upsert = async (payload: unknown) =>
      expect((await t.run('enrollments', 'upsert-program', payload)).state).toBe('completed');
    await upsert({
      program_uuid: PROGRAM,
      organization_key: ORG,
      curricula: [
        { curriculum_uuid: CURRICULUM, is_active: true, course_keys: [CS101, CS102] },
        { curriculum_uuid: OLD_CURRICULUM, is_active: false, course_keys: [CS999] },
      ],
      courses: [
        { course_key: CS101, external_course_key: 'CS101-F26', modes: ['audit', 'masters', 'verified'] },
        { course_key: CS102, external_course_key: 'CS102:F26' },
        { course_key: CS999, external_course_key: 'CS999-F26' },
      ],
    });
    await upsert({
      program_uuid: PAGED,
      organization_key: ORG,
      curricula: [{ curriculum_uuid: PAGED_CURRICULUM, is_active: true, course_keys: [CS101] }],
    });
    await upsert({
      program_uuid: BIG,
      organization_key: ORG,
      curricula: [{ curriculum_uuid: BIG_CURRICULUM, is_active: true, course_keys: [] }],
    });

    await insertAccount(42, 'jdoe', 'jdoe@example.org');
    await insertAccount(43, 'nomail', null);
    await insertAccount(44, 'idle', 'idle@example.org');
    await insertAccount(45, 'sorter', null);

    // PROGRAM: two waiting and two realized learners, one of them an account without email.
    const a = await insertPe(PROGRAM, 'Learner-A', CURRICULUM, 'enrolled', null);
    const b = await insertPe(PROGRAM, 'learner-b', CURRICULUM, 'enrolled', 42);
    const c = await insertPe(PROGRAM, 'learner-c', OLD_CURRICULUM, 'pending', 43);
    const d = await insertPe(PROGRAM, 'learner/d e', CURRICULUM, 'suspended', null);

    // CS101: staff by a pending role (a), by a granted role (b), and not staff (c, d); c holds a
    // role on another course, which must not count here.
    const pceA = await insertPce(a, CS101, 'active', null);
    await t.sql`insert into pending_role_assignments (program_course_enrollment_id) values (${pceA})`;
    await insertPce(b, CS101, 'active', await insertCe(42, CS101, 'masters', true));
    await t.sql`insert into course_staff_roles (user_id, course_key) values (42, ${CS101}), (43, ${CS102})`;
    await insertPce(c, CS101, 'inactive', await insertCe(43, CS101, 'masters', false));
    await insertPce(d, CS101, 'active', null);
    await insertPce(b, CS102, 'active', await insertCe(42, CS102, 'masters', true));

    // PAGED: 25 learners, each with a PCE in CS101; BIG: more than the page size cap.
    await t.sql`
      insert into program_enrollments (program_uuid, organization_key, student_key, curriculum_uuid, status)
      select ${PAGED}, ${ORG}, 'paged-' || lpad(i::text, 2, '0'), ${PAGED_CURRICULUM}, 'enrolled'
      from generate_series(1, 25) i`;
    await t.sql`
      insert into program_course_enrollments (program_enrollment_id, course_key, status, organization_key, student_key_lower)
      select id, ${CS101}, 'inactive', organization_key, student_key_lower
      from program_enrollments where program_uuid = ${PAGED} order by id`;
    await t.sql`
      insert into program_enrollments (program_uuid, organization_key, student_key, curriculum_uuid, status)
      select ${BIG}, ${ORG}, 'big-' || lpad(i::text, 4, '0'), ${BIG_CURRICULUM}, 'enrolled'
      from generate_series(1, 1005) i`;

    // History of Learner-A, interleaved with another learner's rows and a CE row that names the PE.
    await insertHistory(
      a,
      'program_enrollment',
      'created',
      { student_key: [null, 'Learner-A'], status: [null, 'enrolled'], curriculum_uuid: [null, CURRICULUM] },
      '2026-01-02T03:04:05.678Z',
      'job-1',
      'registrar:jdoe',
    );
    await insertHistory(
      b,
      'program_enrollment',
      'created',
      { student_key: [null, 'learner-b'] },
      '2026-01-02T03:04:05.700Z',
      'job-1',
      null,
    );
    await insertHistory(
      a,
      'program_course_enrollment',
      'created',
      { course_key: [null, CS101], status: [null, 'active'] },
      '2026-01-02T03:04:06.000Z',
      'job-2',
      null,
    );
    await insertHistory(
      a,
      'course_enrollment',
      'created',
      { mode: [null, 'masters'] },
      '2026-01-02T03:04:06.500Z',
      'job-2',
      null,
    );
    await insertHistory(
      a,
      'program_enrollment',
      'changed',
      { status: ['enrolled', 'suspended'] },
      '2026-01-03T00:00:00.001Z',
      'job-3',
      'support:amy',
    );
    await insertHistory(
      d,
      'program_enrollment',
      'created',
      { student_key: [null, 'learner/d e'] },
      '2026-01-04T00:00:00.000Z',
      'job-4',
      null,
    );

    // Account 45's course enrollments, in an order that neither insertion nor locale sorting gives.
    for (const key of ['x\u{1F600}', 'course-v1:UoX+b', 'x\uFF5E', 'course-v1:UoX+a', 'course-v1:UoX+B']) {
      await insertCe(45, key, key.startsWith('x') ? 'verified' : 'audit', key !== 'course-v1:UoX+a');
    }
    await t.sql`insert into course_staff_roles (user_id, course_key) values (45, 'course-v1:UoX+b')`;
  });

  describe('GET /api/v1/programs/{program_uuid}/enrollments', () => {
    it('lists the PEs in creation order with account details only for realized ones', async () => {
      const { status, body } = await json(`/api/v1/programs/${PROGRAM}/enrollments`);
      expect(status).toBe(200);
      expect(body).toEqual({
        next: null,
        previous: null,
        results: [
          {
            student_key: 'Learner-A',
            status: 'enrolled',
            account_exists: false,
            curriculum_uuid: CURRICULUM,
            username: '',
            email: '',
          },
          {
            student_key: 'learner-b',
            status: 'enrolled',
            account_exists: true,
            curriculum_uuid: CURRICULUM,
            username: 'jdoe',
            email: 'jdoe@example.org',
          },
          {
            student_key: 'learner-c',
            status: 'pending',
            account_exists: true,
            curriculum_uuid: OLD_CURRICULUM,
            username: 'nomail',
            email: '',
          },
          {
            student_key: 'learner/d e',
            status: 'suspended',
            account_exists: false,
            curriculum_uuid: CURRICULUM,
            username: '',
            email: '',
          },
        ],
      });
    });

    it('matches the program uuid in any case', async () => {
      const { status, body } = await json<Envelope<unknown>>(`/api/v1/programs/${PROGRAM.toUpperCase()}/enrollments`);
      expect(status).toBe(200);
      expect(body.results).toHaveLength(4);
    });

    it('answers 404 for an unknown program and for something that is not a uuid', async () => {
      for (const uuid of ['99999999-2222-3333-4444-555555555555', 'not-a-uuid']) {
        const { status, body } = await json(`/api/v1/programs/${uuid}/enrollments`);
        expect(status).toBe(404);
        expect(body).toEqual({ error: expect.stringContaining('unknown program') });
      }
    });

    it('pages forward to the end and back to the start, keeping page_size in the links', async () => {
      const path = `/api/v1/programs/${PAGED}/enrollments`;
      const keys = (page: Envelope<{ student_key: string }>) => page.results.map((r) => r.student_key);
      const expected = Array.from({ length: 25 }, (_, i) => `paged-${String(i + 1).padStart(2, '0')}`);

      const first = (await json<Envelope<{ student_key: string }>>(`${path}?page_size=10`)).body;
      expect(keys(first)).toEqual(expected.slice(0, 10));
      expect(first.previous).toBeNull();
      expect(first.next).toMatch(new RegExp(`^${t.url}${path}\\?page_size=10&cursor=[A-Za-z0-9_-]+$`));

      const second = await follow<{ student_key: string }>(first.next!);
      expect(keys(second)).toEqual(expected.slice(10, 20));
      expect(second.previous).not.toBeNull();

      const third = await follow<{ student_key: string }>(second.next!);
      expect(keys(third)).toEqual(expected.slice(20));
      expect(third.next).toBeNull();
      expect(third.previous).toContain('page_size=10');

      const backToSecond = await follow<{ student_key: string }>(third.previous!);
      expect(keys(backToSecond)).toEqual(expected.slice(10, 20));
      expect(backToSecond.next).not.toBeNull();
      const backToFirst = await follow<{ student_key: string }>(backToSecond.previous!);
      expect(keys(backToFirst)).toEqual(expected.slice(0, 10));
      expect(backToFirst.previous).toBeNull();
      expect(keys(await follow<{ student_key: string }>(backToFirst.next!))).toEqual(expected.slice(10, 20));
    });

    it('ends exactly at a page boundary without a dangling next page', async () => {
      const path = `/api/v1/programs/${PAGED}/enrollments`;
      const first = (await json<Envelope<unknown>>(`${path}?page_size=5`)).body;
      let page = first;
      let pages = 1;
      while (page.next) {
        page = await follow(page.next);
        pages += 1;
      }
      expect(pages).toBe(5);
      expect(page.results).toHaveLength(5);
    });

    it('offers no previous or next page once the rows there are gone', async () => {
      const shrink = '44444444-2222-3333-4444-555555555555';
      await t.run('enrollments', 'upsert-program', {
        program_uuid: shrink,
        organization_key: ORG,
        curricula: [{ curriculum_uuid: 'dddddddd-1111-2222-3333-444444444444', is_active: true, course_keys: [] }],
      });
      await t.sql`
        insert into program_enrollments (program_uuid, organization_key, student_key, curriculum_uuid, status)
        select ${shrink}, ${ORG}, 'shrink-' || i, 'dddddddd-1111-2222-3333-444444444444', 'enrolled'
        from generate_series(1, 6) i`;
      const first = (
        await json<Envelope<{ student_key: string }>>(`/api/v1/programs/${shrink}/enrollments?page_size=3`)
      ).body;
      await t.sql`delete from program_enrollments where student_key in ('shrink-1', 'shrink-2', 'shrink-3')`;
      const second = await follow<{ student_key: string }>(first.next!);
      expect(second.results.map((r) => r.student_key)).toEqual(['shrink-4', 'shrink-5', 'shrink-6']);
      expect(second.previous).toBeNull();
      expect(second.next).toBeNull();
      // A cursor left pointing into rows that are all gone gives an empty page, not an error.
      await t.sql`delete from program_enrollments where program_uuid = ${shrink}`;
      expect(await follow(first.next!)).toEqual({ next: null, previous: null, results: [] });
    });

    it('answers the page as JSON.stringify writes it, whatever characters the keys, usernames and emails hold', async () => {
      // The page's JSON is written by Postgres (db/reads.ts listPage): its escaping must be JSON.stringify's.
      const odd = '44444444-2222-3333-4444-666666666666';
      const oddCurriculum = 'dddddddd-1111-2222-3333-666666666666';
      await t.run('enrollments', 'upsert-program', {
        program_uuid: odd,
        organization_key: ORG,
        curricula: [{ curriculum_uuid: oddCurriculum, is_active: true, course_keys: [] }],
      });
      const values = [
        'q"uote',
        'back\\slash',
        'ctl\u0001\u001f\u007f',
        'tab\tnl\ncr\r\b\f',
        'emoji\u{1F600}',
        'sep\u2028\u2029',
        'slash/</script>',
        'ümlaut\u00A0\uFEFF',
      ];
      const expected = [];
      for (const [i, value] of values.entries()) {
        await insertAccount(7000 + i, `u-${value}`, `${value}@example.org`);
        await insertPe(odd, `odd-${value}`, oddCurriculum, 'pending', 7000 + i);
        await insertPe(odd, `odd-waiting-${value}`, oddCurriculum, 'enrolled', null);
        const item = { status: 'pending', account_exists: true, curriculum_uuid: oddCurriculum };
        expected.push(
          { student_key: `odd-${value}`, ...item, username: `u-${value}`, email: `${value}@example.org` },
          {
            ...item,
            student_key: `odd-waiting-${value}`,
            status: 'enrolled',
            account_exists: false,
            username: '',
            email: '',
          },
        );
      }
      const read = async (path: string) => {
        const res = await t.api(path);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
        const text = await res.text();
        expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text));
        const page = JSON.parse(text) as Envelope<Record<string, unknown>>;
        // Compact, fields in the contract's order, strings escaped as JSON.stringify escapes them.
        expect(text).toBe(JSON.stringify(page));
        return page;
      };
      const first = await read(`/api/v1/programs/${odd}/enrollments?page_size=9`);
      const { pathname, search } = new URL(first.next!);
      const second = await read(`${pathname}${search}`);
      expect([...first.results, ...second.results]).toEqual(expected);
      expect(Object.keys(first.results[0]!)).toEqual([
        'student_key',
        'status',
        'account_exists',
        'curriculum_uuid',
        'username',
        'email',
      ]);
    });

    it('defaults page_size to 100 and takes anything above 1,000 as 1,000', async () => {
      const path = `/api/v1/programs/${BIG}/enrollments`;
      const byDefault = (await json<Envelope<unknown>>(path)).body;
      expect(byDefault.results).toHaveLength(100);
      expect(new URL(byDefault.next!).searchParams.get('page_size')).toBe('100');

      const capped = (await json<Envelope<{ student_key: string }>>(`${path}?page_size=5000`)).body;
      expect(capped.results).toHaveLength(1000);
      expect(capped.results.at(-1)!.student_key).toBe('big-1000');
      expect(new URL(capped.next!).searchParams.get('page_size')).toBe('1000');
      const rest = await follow<{ student_key: string }>(capped.next!);
      expect(rest.results.map((r) => r.student_key)).toEqual([
        'big-1001',
        'big-1002',
        'big-1003',
        'big-1004',
        'big-1005',
      ]);
      expect(rest.next).toBeNull();
    });

    it('answers 400 for a page_size that is not a positive integer and for a bad cursor', async () => {
      const path = `/api/v1/programs/${PAGED}/enrollments`;
      for (const size of ['0', '-1', 'abc', '1.5', '1e3', '', '10&page_size=20']) {
        const { status, body } = await json(`${path}?page_size=${size}`);
        expect(status, `page_size=${size}`).toBe(400);
        expect(body).toEqual({ error: expect.stringContaining('page_size') });
      }
      const forged = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      for (const cursor of [
        'garbage!',
        'bm90IGpzb24',
        forged({ id: 'x', dir: 'next' }),
        forged({ id: 3, dir: 'up' }),
        forged({ id: -1, dir: 'next' }),
        '',
      ]) {
        const { status, body } = await json(`${path}?cursor=${enc(cursor)}`);
        expect(status, `cursor=${cursor}`).toBe(400);
        expect(body).toEqual({ error: 'invalid cursor' });
      }
    });

    it('builds the links from the Host header and X-Forwarded-Proto', async () => {
      const path = `/api/v1/programs/${PAGED}/enrollments?page_size=10`;
      // fetch() always sends the Host of its URL; node:http lets a test send another, as a proxy would.
      const plain = await new Promise<Envelope<unknown>>((resolve, reject) => {
        const request = http.get(
          `${t.url}${path}`,
          { headers: { host: 'registrar.example.org:8443', authorization: `Bearer ${API_TOKEN}` } },
          (res) => {
            let text = '';
            res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
            res.on('end', () => resolve(JSON.parse(text) as Envelope<unknown>));
          },
        );
        request.on('error', reject);
      });
      expect(plain.next).toMatch(
        new RegExp(
          `^http://registrar\\.example\\.org:8443/api/v1/programs/${PAGED}/enrollments\\?page_size=10&cursor=`,
        ),
      );
      const proxied = (await json<Envelope<unknown>>(path, { headers: { 'x-forwarded-proto': 'https' } })).body;
      expect(proxied.next!.startsWith(`https://${new URL(t.url).host}/api/v1/programs/${PAGED}/enrollments?`)).toBe(
        true,
      );
      const second = await follow(proxied.next!);
      expect(second.previous).toMatch(/^http:\/\//);
    });
  });

  describe('GET /api/v1/programs/{program_uuid}/courses/{course_key}/enrollments', () => {
    const expectedCs101 = [
      {
        student_key: 'Learner-A',
        status: 'active',
        account_exists: false,
        curriculum_uuid: CURRICULUM,
        course_staff: true,
      },
      {
        student_key: 'learner-b',
        status: 'active',
        account_exists: true,
        curriculum_uuid: CURRICULUM,
        course_staff: true,
      },
      {
        student_key: 'learner-c',
        status: 'inactive',
        account_exists: true,
        curriculum_uuid: OLD_CURRICULUM,
        course_staff: false,
      },
      {
        student_key: 'learner/d e',
        status: 'active',
        account_exists: false,
        curriculum_uuid: CURRICULUM,
        course_staff: false,
      },
    ];

    it('lists the PCEs with course_staff from pending roles (waiting) and granted roles (realized)', async () => {
      const { status, body } = await json(`/api/v1/programs/${PROGRAM}/courses/${enc(CS101)}/enrollments`);
      expect(status).toBe(200);
      expect(body).toEqual({ next: null, previous: null, results: expectedCs101 });
    });

    it('finds the course by its external key and by a percent-encoded key with slashes', async () => {
      const byExternal = await json(`/api/v1/programs/${PROGRAM}/courses/CS101-F26/enrollments`);
      expect(byExternal.status).toBe(200);
      expect(byExternal.body.results).toEqual(expectedCs101);
      const legacy = await json(`/api/v1/programs/${PROGRAM}/courses/${enc(CS102)}/enrollments`);
      expect(legacy.status).toBe(200);
      expect(legacy.body.results).toEqual([
        {
          student_key: 'learner-b',
          status: 'active',
          account_exists: true,
          curriculum_uuid: CURRICULUM,
          course_staff: false,
        },
      ]);
      const legacyExternal = await json(`/api/v1/programs/${PROGRAM}/courses/${enc('CS102:F26')}/enrollments`);
      expect(legacyExternal.body.results).toEqual(legacy.body.results);
    });

    it('answers 404 for an unknown program and a course outside the program', async () => {
      const unknownProgram = await json(
        `/api/v1/programs/99999999-2222-3333-4444-555555555555/courses/${enc(CS101)}/enrollments`,
      );
      expect(unknownProgram.status).toBe(404);
      expect(unknownProgram.body).toEqual({ error: expect.stringContaining('unknown program') });
      for (const key of [CS999, 'CS999-F26', 'course-v1:UoX+NOPE+2026']) {
        const { status, body } = await json(`/api/v1/programs/${PROGRAM}/courses/${enc(key)}/enrollments`);
        expect(status, key).toBe(404);
        expect(body).toEqual({ error: `course ${key} is not in program ${PROGRAM}` });
      }
      // A course of another program is not in this one either.
      expect((await json(`/api/v1/programs/${PAGED}/courses/${enc(CS102)}/enrollments`)).status).toBe(404);
    });

    it('pages through the same envelope both ways', async () => {
      const path = `/api/v1/programs/${PAGED}/courses/${enc(CS101)}/enrollments`;
      const keys = (page: Envelope<{ student_key: string }>) => page.results.map((r) => r.student_key);
      const first = (await json<Envelope<{ student_key: string }>>(`${path}?page_size=20`)).body;
      expect(first.results).toHaveLength(20);
      expect(first.results[0]).toEqual({
        student_key: 'paged-01',
        status: 'inactive',
        account_exists: false,
        curriculum_uuid: PAGED_CURRICULUM,
        course_staff: false,
      });
      expect(first.next).toContain(`/courses/${enc(CS101)}/enrollments?page_size=20&cursor=`);
      const last = await follow<{ student_key: string }>(first.next!);
      expect(keys(last)).toEqual(['paged-21', 'paged-22', 'paged-23', 'paged-24', 'paged-25']);
      expect(last.next).toBeNull();
      const back = await follow<{ student_key: string }>(last.previous!);
      expect(keys(back)).toEqual(keys(first));
      expect(back.previous).toBeNull();
    });

    it('answers 400 for a bad page_size here too', async () => {
      expect((await json(`/api/v1/programs/${PROGRAM}/courses/${enc(CS101)}/enrollments?page_size=0`)).status).toBe(
        400,
      );
    });
  });

  describe('GET /api/v1/programs/{program_uuid}/enrollments/{student_key}/history', () => {
    it('lists the PE and PCE rows of the learner, oldest first, with the key matched case-insensitively', async () => {
      const { status, body } = await json(`/api/v1/programs/${PROGRAM}/enrollments/LEARNER-a/history`);
      expect(status).toBe(200);
      expect(body).toEqual([
        {
          at: '2026-01-02T03:04:05.678Z',
          entity: 'program_enrollment',
          action: 'created',
          changes: {
            student_key: [null, 'Learner-A'],
            status: [null, 'enrolled'],
            curriculum_uuid: [null, CURRICULUM],
          },
          job_id: 'job-1',
          queue: 'enrollments',
          requested_by: 'registrar:jdoe',
          course_key: null,
        },
        {
          at: '2026-01-02T03:04:06.000Z',
          entity: 'program_course_enrollment',
          action: 'created',
          changes: { course_key: [null, CS101], status: [null, 'active'] },
          job_id: 'job-2',
          queue: 'enrollments',
          requested_by: null,
          course_key: CS101,
        },
        {
          at: '2026-01-03T00:00:00.001Z',
          entity: 'program_enrollment',
          action: 'changed',
          changes: { status: ['enrolled', 'suspended'] },
          job_id: 'job-3',
          queue: 'enrollments',
          requested_by: 'support:amy',
          course_key: null,
        },
      ]);
    });

    it('takes a percent-encoded key with a slash and a space', async () => {
      const { status, body } = await json(
        `/api/v1/programs/${PROGRAM.toUpperCase()}/enrollments/${enc('LEARNER/D E')}/history`,
      );
      expect(status).toBe(200);
      expect(body).toEqual([expect.objectContaining({ entity: 'program_enrollment', job_id: 'job-4' })]);
    });

    it('takes a key of 255 characters', async () => {
      const key = 'k'.repeat(254) + '\u00e9';
      const peId = await insertPe(PAGED, key, PAGED_CURRICULUM, 'enrolled', null);
      await insertHistory(
        peId,
        'program_enrollment',
        'created',
        { student_key: [null, key] },
        '2026-02-01T00:00:00.000Z',
        null,
        null,
      );
      const { status, body } = await json(`/api/v1/programs/${PAGED}/enrollments/${enc(key.toUpperCase())}/history`);
      expect(status).toBe(200);
      expect(body).toHaveLength(1);
    });

    it('answers 404 for a PE without history, an unknown key, another program and an unknown program', async () => {
      for (const path of [
        `/api/v1/programs/${PROGRAM}/enrollments/learner-c/history`,
        `/api/v1/programs/${PROGRAM}/enrollments/nobody/history`,
        `/api/v1/programs/${PAGED}/enrollments/Learner-A/history`,
        `/api/v1/programs/99999999-2222-3333-4444-555555555555/enrollments/Learner-A/history`,
        `/api/v1/programs/nope/enrollments/Learner-A/history`,
      ]) {
        const { status, body } = await json(path);
        expect(status, path).toBe(404);
        expect(body).toHaveProperty('error');
      }
    });
  });

  describe('GET /api/v1/users/{user_id}/course_enrollments', () => {
    it('lists the account course enrollments sorted by course key in code-point order', async () => {
      const { status, body } = await json('/api/v1/users/45/course_enrollments');
      expect(status).toBe(200);
      expect(body).toEqual([
        { course_key: 'course-v1:UoX+B', mode: 'audit', is_active: true, course_staff: false },
        { course_key: 'course-v1:UoX+a', mode: 'audit', is_active: false, course_staff: false },
        { course_key: 'course-v1:UoX+b', mode: 'audit', is_active: true, course_staff: true },
        { course_key: 'x\uFF5E', mode: 'verified', is_active: true, course_staff: false },
        { course_key: 'x\u{1F600}', mode: 'verified', is_active: true, course_staff: false },
      ]);
    });

    it('shows the course enrollments behind program enrollments', async () => {
      const { body } = await json('/api/v1/users/42/course_enrollments');
      expect(body).toEqual([
        { course_key: CS102, mode: 'masters', is_active: true, course_staff: false },
        { course_key: CS101, mode: 'masters', is_active: true, course_staff: true },
      ]);
    });

    it('lists the course enrollments the LMS reported for an account it has not announced yet', async () => {
      await insertCe(46, CS101, 'verified', true);
      expect(await json('/api/v1/users/46/course_enrollments')).toEqual({
        status: 200,
        body: [{ course_key: CS101, mode: 'verified', is_active: true, course_staff: false }],
      });
    });

    it('answers [] for a known account without any, and 404 for an unknown one or an id that names none', async () => {
      expect(await json('/api/v1/users/44/course_enrollments')).toEqual({ status: 200, body: [] });
      const unknown = await json('/api/v1/users/999/course_enrollments');
      expect(unknown.status).toBe(404);
      expect(unknown.body).toHaveProperty('error');
      for (const id of ['abc', '0', '-1', '1.5', '9007199254740992']) {
        const { status, body } = await json(`/api/v1/users/${id}/course_enrollments`);
        expect(status, id).toBe(404);
        expect(body).toHaveProperty('error');
      }
    });
  });

  describe('GET /api/v1/jobs/{job_id}', () => {
    it('shows a completed job as Succeeded, without a result CSV for a job that has no results', async () => {
      const done = await t.run('enrollments', 'upsert-program', {
        program_uuid: PAGED,
        organization_key: ORG,
        curricula: [{ curriculum_uuid: PAGED_CURRICULUM, is_active: true, course_keys: [CS101] }],
      });
      const { status, body } = await json(`/api/v1/jobs/${done.job.id}`);
      expect(status).toBe(200);
      expect(body).toEqual({
        job_id: done.job.id,
        name: 'upsert-program',
        created: new Date(done.job.timestamp).toISOString(),
        state: 'Succeeded',
        result: null,
        text: null,
        error: null,
        requested_by: null,
      });
      expect(body.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const csv = await t.api(`/api/v1/jobs/${done.job.id}/result.csv`);
      expect(csv.status).toBe(404);
      expect(await csv.json()).toHaveProperty('error');
    });

    it('shows a malformed job as Failed with its reason', async () => {
      const done = await t.run('enrollments', 'upsert-program', { program_uuid: 'nope' }, { jobId: 'bad-upsert' });
      expect(done.state).toBe('failed');
      const { status, body } = await json('/api/v1/jobs/bad-upsert');
      expect(status).toBe(200);
      expect(body).toMatchObject({
        job_id: 'bad-upsert',
        name: 'upsert-program',
        state: 'Failed',
        result: null,
        text: null,
      });
      expect(body.error).toMatch(/^invalid payload: /);
      expect(body.error).toBe(done.failedReason);
      expect((await t.api('/api/v1/jobs/bad-upsert/result.csv')).status).toBe(404);
    });

    it('shows a job that has not run yet as Pending', async () => {
      const job = await t.add(
        'enrollments',
        'upsert-program',
        { program_uuid: PAGED },
        { jobId: 'later', delay: 60_000 },
      );
      const { body } = await json('/api/v1/jobs/later');
      expect(body).toEqual({
        job_id: 'later',
        name: 'upsert-program',
        created: new Date(job.timestamp).toISOString(),
        state: 'Pending',
        result: null,
        text: null,
        error: null,
        requested_by: null,
      });
      expect((await t.api('/api/v1/jobs/later/result.csv')).status).toBe(404);
    });

    it('answers 404 for an unknown job and its result CSV', async () => {
      for (const path of ['/api/v1/jobs/no-such-job', '/api/v1/jobs/no-such-job/result.csv']) {
        const res = await t.api(path);
        expect(res.status, path).toBe(404);
        expect(await res.json()).toHaveProperty('error');
      }
    });

    it('is behind the bearer token like the rest of /api', async () => {
      expect((await fetch(`${t.url}/api/v1/jobs/later`)).status).toBe(401);
      expect((await fetch(`${t.url}/api/v1/users/42/course_enrollments`)).status).toBe(401);
    });
  });
});

/**
 * The write jobs' handlers belong to another part of the service; here a plain BullMQ worker
 * stands in for them, on real Redis, so that the job API can be seen on jobs that return write
 * results, that are running, and that wait for a retry. The service serves HTTP only.
 */
describe('job API over running, retried and write-result jobs', () => {
  let service: Service;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let producers: PrefixQueues | undefined;
  let queues: PrefixQueues['queues'];
  let worker: Worker;
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const prefix = newPrefix();

  const WRITE_RESULT = {
    code: 207,
    results: {
      b: 'enrolled',
      B: 'pending',
      'a,comma': 'conflict',
      'quote"d': 'duplicated',
      'line\nbreak': 'invalid-status',
      'x\u{1F600}': 'enrolled',
      'x\uFF5E': 'enrolled',
      Ä: 'canceled',
    },
    counts: { enrolled: 3, pending: 1, conflict: 1, duplicated: 1, 'invalid-status': 1, canceled: 1 },
  };

  const api = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${service.url}${path}`, { headers: { authorization: `Bearer ${API_TOKEN}`, ...headers } });

  async function until(job: Job, state: string) {
    await waitFor(
      async () => ((await job.getState()) === state ? true : undefined),
      30_000,
      `job ${job.id} ${state}`,
      15,
    );
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    service = await startService(loadConfig({ ...serviceEnv(database.url, prefix), API_TOKENS: API_TOKEN }), {
      workers: false,
    });
    producers = await queuesOn(prefix);
    queues = producers.queues;
    worker = new Worker(
      'enrollments',
      async (job) => {
        if (job.name === 'write-program-enrollments') return WRITE_RESULT;
        if (job.name === 'block') return released;
        throw new Error('a fault that a retry may cure');
      },
      { connection: new Redis(inject('redisUrl'), { maxRetriesPerRequest: null }), prefix, concurrency: 4 },
    );
  });

  afterAll(async () => {
    release();
    await worker?.close();
    await (worker?.opts.connection as Redis | undefined)?.quit();
    await service?.stop();
    await producers?.close();
    await database?.drop();
  });

  it('shows a write job as Succeeded with its code and the URL of its result CSV', async () => {
    const jobId = 'f47ac10b-58cc-4372-a567-0e02b2c3d479';
    const job = await queues.enrollments.add('write-program-enrollments', {}, { jobId });
    await until(job, 'completed');
    const res = await api(`/api/v1/jobs/${jobId}`, { 'x-forwarded-proto': 'https' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      job_id: jobId,
      name: 'write-program-enrollments',
      created: new Date(job.timestamp).toISOString(),
      state: 'Succeeded',
      result: `https://${new URL(service.url).host}/api/v1/jobs/${jobId}/result.csv`,
      text: '207',
      error: null,
      requested_by: null,
    });

    const csv = await api(`/api/v1/jobs/${jobId}/result.csv`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(await csv.text()).toBe(
      'student_key,status\r\n' +
        'B,pending\r\n' +
        '"a,comma",conflict\r\n' +
        'b,enrolled\r\n' +
        '"line\nbreak",invalid-status\r\n' +
        '"quote""d",duplicated\r\n' +
        'x\uFF5E,enrolled\r\n' +
        'x\u{1F600},enrolled\r\n' +
        'Ä,canceled\r\n',
    );
  });

  it('shows a running job as In Progress, without a result CSV', async () => {
    const job = await queues.enrollments.add('block', {}, { jobId: 'running' });
    await until(job, 'active');
    const res = await api('/api/v1/jobs/running');
    expect(await res.json()).toMatchObject({
      job_id: 'running',
      state: 'In Progress',
      result: null,
      text: null,
      error: null,
      requested_by: null,
    });
    expect((await api('/api/v1/jobs/running/result.csv')).status).toBe(404);
    release();
    await until(job, 'completed');
  });

  it('shows a job waiting for its next attempt as Retrying', async () => {
    const job = await queues.enrollments.add(
      'flaky',
      {},
      { jobId: 'flaky', attempts: 2, backoff: { type: 'fixed', delay: 60_000 } },
    );
    await until(job, 'delayed');
    const res = await api('/api/v1/jobs/flaky');
    expect(await res.json()).toMatchObject({
      job_id: 'flaky',
      state: 'Retrying',
      result: null,
      text: null,
      error: null,
      requested_by: null,
    });
  });

  it('finds jobs of the accounts queue too', async () => {
    const job = await queues.accounts.add('account-created', { user_id: 1 }, { jobId: 'lms-event' });
    const res = await api('/api/v1/jobs/lms-event');
    expect(await res.json()).toEqual({
      job_id: 'lms-event',
      name: 'account-created',
      created: new Date(job.timestamp).toISOString(),
      state: 'Pending',
      result: null,
      text: null,
      error: null,
      requested_by: null,
    });
  });
});

describe('read API helpers', () => {
  it('maps BullMQ states to the Registrar job states', () => {
    const fresh = { attemptsMade: 0, attemptsStarted: 0 };
    expect(jobStatusState('waiting', fresh)).toBe('Pending');
    expect(jobStatusState('prioritized', fresh)).toBe('Pending');
    expect(jobStatusState('delayed', fresh)).toBe('Pending');
    expect(jobStatusState('waiting-children', fresh)).toBe('Pending');
    expect(jobStatusState('active', { attemptsMade: 1, attemptsStarted: 2 })).toBe('In Progress');
    expect(jobStatusState('delayed', { attemptsMade: 1, attemptsStarted: 1 })).toBe('Retrying');
    expect(jobStatusState('waiting', { attemptsMade: 1, attemptsStarted: 1 })).toBe('Retrying');
    // The service's own retry of a transient fault delays the job without a failed attempt.
    expect(jobStatusState('delayed', { attemptsMade: 0, attemptsStarted: 1 })).toBe('Retrying');
    expect(jobStatusState('completed', { attemptsMade: 1, attemptsStarted: 1 })).toBe('Succeeded');
    expect(jobStatusState('failed', { attemptsMade: 1, attemptsStarted: 1 })).toBe('Failed');
    expect(jobStatusState('unknown', fresh)).toBeNull();
  });

  it('orders strings by code point, not by UTF-16 unit or locale', () => {
    const sorted = ['x\u{1F600}', 'b', 'x\uFF5E', 'B', 'a', 'ab', 'Ä', ''].sort(compareCodePoints);
    expect(sorted).toEqual(['', 'B', 'a', 'ab', 'b', 'x\uFF5E', 'x\u{1F600}', 'Ä']);
    expect(compareCodePoints('same', 'same')).toBe(0);
  });

  it('quotes CSV fields only when they need it', () => {
    expect(csvField('plain key')).toBe('plain key');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('cr\rlf\n')).toBe('"cr\rlf\n"');
  });
});
