import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { migrationsFolder, runMigrations } from '../src/db/migrate.js';
import { EXPIRY_SCHEDULER_ID } from '../src/queue/schedules.js';
import { ADMIN, createTestDatabase, startTestService, useTestService } from './support/service.js';

const PROGRAM = {
  program_uuid: '00000000-1111-2222-3333-444444444444',
  program_key: 'masters-in-cs',
  organization_key: 'UoX',
  curricula: [
    {
      curriculum_uuid: 'aaaaaaaa-1111-2222-3333-444444444444',
      is_active: true,
      course_keys: ['course-v1:UoX+CS101+2026'],
    },
  ],
  courses: [
    {
      course_key: 'course-v1:UoX+CS101+2026',
      external_course_key: 'CS101-F26',
      modes: ['audit', 'masters', 'verified'],
    },
  ],
};

describe('service foundation', () => {
  const t = useTestService();

  it('answers /healthz and /readyz', async () => {
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', failing: [] });
  });

  it('applies an upsert-program job put on the queue by a plain BullMQ producer', async () => {
    const done = await t.run('enrollments', 'upsert-program', PROGRAM);
    expect(done.state).toBe('completed');
    expect(done.result).toEqual({ program_uuid: PROGRAM.program_uuid });
    const [program] =
      await t.sql`select program_key, organization_key from programs where program_uuid = ${PROGRAM.program_uuid}`;
    expect(program).toEqual({ program_key: 'masters-in-cs', organization_key: 'UoX' });
    const curricula =
      await t.sql`select curriculum_uuid, is_active, course_keys from curricula where program_uuid = ${PROGRAM.program_uuid}`;
    expect(curricula).toEqual([
      {
        curriculum_uuid: PROGRAM.curricula[0]!.curriculum_uuid,
        is_active: true,
        course_keys: ['course-v1:UoX+CS101+2026'],
      },
    ]);
    const [course] = await t.sql`select modes from courses where course_key = 'course-v1:UoX+CS101+2026'`;
    expect(course!.modes).toEqual(['audit', 'masters', 'verified']);
  });

  it('replaces a program on a second upsert', async () => {
    const replaced = { ...PROGRAM, program_key: 'mcs', curricula: [{ ...PROGRAM.curricula[0]!, is_active: false }] };
    expect((await t.run('enrollments', 'upsert-program', replaced)).state).toBe('completed');
    const curricula = await t.sql`select is_active from curricula where program_uuid = ${PROGRAM.program_uuid}`;
    expect(curricula).toEqual([{ is_active: false }]);
    await t.run('enrollments', 'upsert-program', PROGRAM);
  });

  it('fails a malformed job at once, naming every field, and writes nothing', async () => {
    const bad = {
      program_uuid: 'not-a-uuid',
      organization_key: '',
      curricula: [{ curriculum_uuid: 'aaaaaaaa-1111-2222-3333-555555555555', is_active: 'yes', course_keys: [] }],
    };
    const done = await t.run('enrollments', 'upsert-program', bad, { attempts: 5 });
    expect(done.state).toBe('failed');
    expect(done.failedReason).toMatch(/^invalid payload: /);
    expect(done.failedReason).toContain('program_uuid: ');
    expect(done.failedReason).toContain('organization_key: ');
    expect(done.failedReason).toContain('curricula.0.is_active: ');
    expect(done.job.attemptsMade).toBe(1);
    const [{ n }] =
      (await t.sql`select count(*)::int as n from curricula where curriculum_uuid = 'aaaaaaaa-1111-2222-3333-555555555555'`) as any;
    expect(n).toBe(0);
  });

  it('fails a job of an unknown name without retries', async () => {
    const done = await t.run('accounts', 'no-such-job', {}, { attempts: 3 });
    expect(done.state).toBe('failed');
    expect(done.failedReason).toContain('unknown job name no-such-job');
    expect(done.job.attemptsMade).toBe(1);
  });

  it('guards the dashboard with Basic credentials and shows both queues', async () => {
    const refused = await fetch(`${t.url}/admin/queues`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Basic/);
    const wrong = await fetch(`${t.url}/admin/queues/api/queues`, {
      headers: { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` },
    });
    expect(wrong.status).toBe(401);
    const auth = { authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}` };
    const page = await fetch(`${t.url}/admin/queues`, { headers: auth });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const api = await fetch(`${t.url}/admin/queues/api/queues`, { headers: auth });
    expect(api.status).toBe(200);
    const names = ((await api.json()) as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
    expect(names).toEqual(['accounts', 'enrollments']);
  });

  it('refuses /api without a valid bearer token', async () => {
    const path = `/api/v1/programs/${PROGRAM.program_uuid}/enrollments`;
    expect((await fetch(`${t.url}${path}`)).status).toBe(401);
    const wrong = await fetch(`${t.url}${path}`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toHaveProperty('error');
  });

  it('serves Prometheus metrics with queue depths', async () => {
    const res = await fetch(`${t.url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('program_enrollments_queue_jobs{queue="enrollments",state="completed"}');
    expect(text).toMatch(
      /program_enrollments_jobs_total\{queue="enrollments",name="upsert-program",outcome="completed"\} \d+/,
    );
  });

  it('schedules the daily expiry once however many processes start', async () => {
    await t.startPeer();
    await t.startPeer();
    const schedulers = await t.queues.enrollments.getJobSchedulers();
    expect(schedulers.map((s) => s.key ?? s.id)).toEqual([EXPIRY_SCHEDULER_ID]);
  });
});

describe('dashboard and API closed when unconfigured', () => {
  it('refuses everyone without ADMIN_USER/ADMIN_PASSWORD and API_TOKENS', async () => {
    const t = await startTestService({ ADMIN_USER: '', ADMIN_PASSWORD: '', API_TOKENS: '' });
    try {
      const any = { authorization: `Basic ${Buffer.from(':').toString('base64')}` };
      expect((await fetch(`${t.url}/admin/queues`, { headers: any })).status).toBe(401);
      expect((await fetch(`${t.url}/api/v1/jobs/x`, { headers: { authorization: 'Bearer ' } })).status).toBe(401);
    } finally {
      await t.stop();
    }
  });
});

describe('configuration', () => {
  it('names the bad variable', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ REDIS_URL: 'localhost:6379' })).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ WORKER_CONCURRENCY: '0' })).toThrow(/WORKER_CONCURRENCY/);
    expect(() => loadConfig({ ADMIN_USER: 'a' })).toThrow(/ADMIN_PASSWORD/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:1,b' })).toThrow(/REDIS_CLUSTER_NODES/);
  });

  it('has defaults for everything', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ QUEUE_PREFIX: 'bull', PORT: 3000, API_TOKENS: [], LEARNER_LOCKS: 'on' });
    expect(c.WORKER_CONCURRENCY).toBeGreaterThan(0);
  });
});

describe('migrations', () => {
  it('are safe when several processes apply them at once', async () => {
    const db = await createTestDatabase();
    const fresh = new URL(db.url);
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe('drop schema public cascade; create schema public; drop schema if exists drizzle cascade;');
      await Promise.all(Array.from({ length: 5 }, () => runMigrations(fresh.toString())));
      const [{ n }] = (await sql`select count(*)::int as n from drizzle.__drizzle_migrations`) as any;
      const [{ files }] = (await sql`select 1 as files`) as any;
      expect(n).toBeGreaterThanOrEqual(files);
      const tables = await sql`select count(*)::int as n from information_schema.tables where table_schema = 'public'`;
      expect(tables[0]!.n).toBeGreaterThan(10);
    } finally {
      await sql.end();
      await db.drop();
    }
  });
});

/** A migrations folder holding the committed migrations up to `lastTag` only. */
function migrationsUpTo(lastTag: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'migrations-'));
  const journal = JSON.parse(readFileSync(path.join(migrationsFolder, 'meta/_journal.json'), 'utf8'));
  const last = journal.entries.findIndex((e: { tag: string }) => e.tag === lastTag);
  expect(last).toBeGreaterThanOrEqual(0);
  journal.entries = journal.entries.slice(0, last + 1);
  mkdirSync(path.join(dir, 'meta'));
  writeFileSync(path.join(dir, 'meta/_journal.json'), JSON.stringify(journal));
  for (const e of journal.entries) cpSync(path.join(migrationsFolder, `${e.tag}.sql`), path.join(dir, `${e.tag}.sql`));
  return dir;
}

describe('migration 0007_outbox_batches', () => {
  it('moves every per-event outbox row into a batch of its own, under its id, unpublished ones still unpublished', async () => {
    const db = await createTestDatabase();
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const earlier = migrationsUpTo('0006_history_entity_index');
    try {
      await sql.unsafe('drop schema public cascade; create schema public; drop schema if exists drizzle cascade;');
      await migrate(drizzle({ client: sql }), { migrationsFolder: earlier });
      const created = 'org.openedx.learning.course.enrollment.created.v1';
      const added = 'org.openedx.learning.user.course_access_role.added.v1';
      const rows = await sql<{ id: number; event_id: string }[]>`
        insert into outbox (event_type, topic, user_id, course_key, mode, is_active, org_key, username, email, enrolled_at)
        values (${created}, 'learning-course-enrollment-lifecycle', 7, 'course-v1:O+C+R', 'masters', true, null, 'ada', 'a@x', '2026-11-01T10:00:00Z'),
               (${added}, 'learning-course-access-role-lifecycle', 7, 'course-v1:O+C+R', null, null, 'O', 'ada', 'a@x', null),
               (${created}, 'learning-course-enrollment-lifecycle', 8, 'course-v1:O+D+R', 'masters', true, null, 'bob', '', '2026-11-02T10:00:00Z')
        returning id::int, event_id`;
      await sql`insert into outbox_pending (id) values (${rows[1]!.id}), (${rows[2]!.id})`;

      await runMigrations(db.url);

      // As JSON, and times as epoch seconds: this pool parses neither arrays nor times as the service's does.
      const batches = (
        await sql<{ b: Record<string, unknown> }[]>`
          select row_to_json(x) as b from (
            select b.id::int, b.topic, b.event_count, b.event_ids, b.event_types, b.user_ids, b.course_keys, b.modes,
                   b.is_active, b.org_keys, b.usernames, b.emails,
                   array(select extract(epoch from t)::int from unnest(b.enrolled_at) t) as enrolled_at,
                   (select published from outbox_unpublished u where u.batch_id = b.id) as published
            from outbox_batches b order by b.id
          ) x`
      ).map((r) => r.b);
      expect(batches).toEqual([
        {
          id: rows[0]!.id,
          topic: 'learning-course-enrollment-lifecycle',
          event_count: 1,
          event_ids: [rows[0]!.event_id],
          event_types: [created],
          user_ids: [7],
          course_keys: ['course-v1:O+C+R'],
          modes: ['masters'],
          is_active: [true],
          org_keys: [null],
          usernames: ['ada'],
          emails: ['a@x'],
          enrolled_at: [Date.parse('2026-11-01T10:00:00Z') / 1000],
          published: null,
        },
        {
          id: rows[1]!.id,
          topic: 'learning-course-access-role-lifecycle',
          event_count: 1,
          event_ids: [rows[1]!.event_id],
          event_types: [added],
          user_ids: [7],
          course_keys: ['course-v1:O+C+R'],
          modes: [null],
          is_active: [null],
          org_keys: ['O'],
          usernames: ['ada'],
          emails: ['a@x'],
          enrolled_at: [null],
          published: 0,
        },
        {
          id: rows[2]!.id,
          topic: 'learning-course-enrollment-lifecycle',
          event_count: 1,
          event_ids: [rows[2]!.event_id],
          event_types: [created],
          user_ids: [8],
          course_keys: ['course-v1:O+D+R'],
          modes: ['masters'],
          is_active: [true],
          org_keys: [null],
          usernames: ['bob'],
          emails: [''],
          enrolled_at: [Date.parse('2026-11-02T10:00:00Z') / 1000],
          published: 0,
        },
      ]);
      // New batches take ids after the moved ones, so they are published after them.
      const [next] = await sql<{ id: number }[]>`
        insert into outbox_batches (topic, event_count, event_ids, event_types, user_ids, course_keys, modes, is_active,
                                    org_keys, usernames, emails, enrolled_at)
        values ('t', 0, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}') returning id::int`;
      expect(next!.id).toBeGreaterThan(rows[2]!.id);
      const old =
        await sql`select table_name from information_schema.tables where table_name in ('outbox', 'outbox_pending')`;
      expect(old).toHaveLength(0);
    } finally {
      rmSync(earlier, { recursive: true, force: true });
      await sql.end();
      await db.drop();
    }
  });
});

describe('Redis Cluster settings', () => {
  it('require a hash tag in QUEUE_PREFIX', () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7000' })).toThrow(
      /QUEUE_PREFIX: must contain a hash tag/,
    );
    expect(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000', QUEUE_PREFIX: '{enroll}' }).REDIS_CLUSTER_NODES).toEqual([
      '10.0.0.1:7000',
    ]);
  });
});
