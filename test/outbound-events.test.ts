/**
 * Outbound events (contract.md "Outbound events", docs/openedx-event-bus.md): what each change
 * publishes, read by a consumer that is not ours (Debian's python3 with python3-redis and
 * python3-avro, through a consumer group, decoding every `event_data` with the reference's schemas).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type ConsumedEntry,
  consumeAsLms,
  entriesAdded,
  type OutboxRow,
  outboxRows,
  streamsOf,
  untilAllPublished,
} from './support/event-bus.js';
import { newPrefix, queuesOn, startServiceOn } from './support/extra-services.js';
import {
  type Account,
  accountCreated,
  agePe,
  announceLearner,
  completed,
  courseEnrollmentChanged,
  enrollCourseOk,
  getPe,
  newAccount,
  newCourseKey,
  newOrg,
  newProgram,
  type ProgramPayload,
  uniqueKey,
  writeCourseEnrollments,
  writeEnrollments,
} from './support/fixtures.js';
import { useTestService, waitJob } from './support/service.js';

const t = useTestService();
const GROUP = 'lms';

const short = (type: string) => type.replace(/^org\.openedx\.learning\./, '').replace(/\.v1$/, '');
/** An entry as `<type> <user> <course> [<mode> <is_active>]`, the facts each scenario checks. */
function fact(e: ConsumedEntry): string {
  if (e.data.enrollment) {
    const d = e.data.enrollment;
    return `${short(e.type)} ${d.user.id} ${d.course.course_key} ${d.mode} ${d.is_active}`;
  }
  const d = e.data.course_access_role_data;
  return `${short(e.type)} ${d.user.id} ${d.course_key} ${d.role} ${d.org_key}`;
}

let redis: Redis;
let lastOutboxId = 0;
const consumed: ConsumedEntry[] = [];
const streams = () => streamsOf(t.prefix);

/**
 * The entries published since the last call, as the LMS reads them: waits until the outbox is
 * published, then reads exactly the new rows' number of entries and checks that nothing more is
 * in the streams (each row published once, and nothing without a row).
 */
async function newEvents(): Promise<{ entries: ConsumedEntry[]; rows: OutboxRow[] }> {
  const total = await untilAllPublished(t.sql);
  const rows = await outboxRows(t.sql, lastOutboxId);
  const { enrollments, roles } = streams();
  const entries = rows.length ? await consumeAsLms(inject('redisUrl'), GROUP, rows.length, [enrollments, roles]) : [];
  expect(entries.length).toBe(rows.length);
  // Entries read by every group are trimmed: count what was ever added.
  expect((await entriesAdded(redis, enrollments)) + (await entriesAdded(redis, roles))).toBe(total);
  lastOutboxId = rows.at(-1)?.id ?? lastOutboxId;
  consumed.push(...entries);
  // Per stream, the entries come in the rows' order.
  for (const stream of [enrollments, roles]) {
    expect(entries.filter((e) => e.stream === stream).map((e) => e.id)).toEqual(
      rows.filter((r) => stream.endsWith(r.topic)).map((r) => r.event_id),
    );
  }
  return { entries, rows };
}

async function newFacts(): Promise<string[]> {
  return (await newEvents()).entries.map(fact).sort();
}

let org: string;
let c1: string;
let c2: string;
let c3: string;
let p1: ProgramPayload;
let p2: ProgramPayload;
let learner: string;
let account: Account;

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  org = newOrg();
  [c1, c2, c3] = [newCourseKey(org, 'A'), newCourseKey(org, 'B'), newCourseKey(org, 'C')];
  const courses = [c1, c2, c3].map((course_key) => ({ course_key, modes: ['audit', 'masters', 'verified'] }));
  p1 = await newProgram(t, { org, courses: courses.slice(0, 2) });
  p2 = await newProgram(t, { org, courses: [courses[0]!, courses[2]!] });
  // The LMS joins the group before anything is published, as the stock consumer does at start.
  await consumeAsLms(inject('redisUrl'), GROUP, 0, [streams().enrollments, streams().roles], 1);
});

afterAll(async () => {
  await redis?.quit();
});

describe('outbound events, as an LMS consumer reads them', () => {
  it('a waiting learner makes none; realizing two courses and a staff role makes two created and one role added', async () => {
    learner = uniqueKey('mover');
    await writeEnrollments(t, p1, [learner]);
    await writeCourseEnrollments(t, p1, c1, [{ student_key: learner, status: 'active', course_staff: true }]);
    await writeCourseEnrollments(t, p1, c2, [learner]);
    expect(await newFacts()).toEqual([]);

    account = await announceLearner(t, learner, org);
    const { entries, rows } = await newEvents();
    const u = account.user_id;
    expect(entries.map(fact).sort()).toEqual(
      [
        `course.enrollment.created ${u} ${c1} masters true`,
        `course.enrollment.created ${u} ${c2} masters true`,
        `user.course_access_role.added ${u} ${c1} staff ${org}`,
      ].sort(),
    );

    // Every field as the contract fills it, and as stored in the outbox.
    const created = entries.find(
      (e) => e.type.endsWith('enrollment.created.v1') && e.data.enrollment.course.course_key === c1,
    )!;
    const row = rows.find((r) => r.event_id === created.id)!;
    const [ce] = await t.sql<{ created_at: Date }[]>`
      select created_at from course_enrollments where user_id = ${u} and course_key = ${c1}`;
    const iso = (d: Date) => `${d.toISOString().slice(0, 23)}000+00:00`;
    const user = { id: u, is_active: true, pii: { username: account.username, email: account.email, name: '' } };
    expect(created).toMatchObject({
      type: 'org.openedx.learning.course.enrollment.created.v1',
      source: 'openedx/program-enrollments/worker',
      minorversion: '0',
      sourcelib: '0.1.0',
      time: iso(row.occurred_at),
    });
    expect(created.sourcehost).not.toBe('');
    expect(created.data).toEqual({
      enrollment: {
        user,
        course: { course_key: c1, display_name: '', start: null, end: null },
        mode: 'masters',
        is_active: true,
        creation_date: iso(ce!.created_at),
        created_by: null,
      },
    });
    const role = entries.find((e) => e.type.endsWith('course_access_role.added.v1'))!;
    expect(role.stream).toBe(streams().roles);
    expect(role.data).toEqual({ course_access_role_data: { user, org_key: org, course_key: c1, role: 'staff' } });
  });

  it('a move between programs publishes changed events only where the CE changed', async () => {
    const u = account.user_id;
    await writeCourseEnrollments(t, p1, c1, [{ student_key: learner, status: 'inactive' }]);
    expect(await newFacts()).toEqual([`course.enrollment.changed ${u} ${c1} masters false`]);
    await writeEnrollments(t, p2, [learner]);
    await writeCourseEnrollments(t, p2, c1, [learner]);
    await writeCourseEnrollments(t, p2, c3, [learner]);
    expect(await newFacts()).toEqual(
      [`course.enrollment.changed ${u} ${c1} masters true`, `course.enrollment.created ${u} ${c3} masters true`].sort(),
    );
    // Writing what is already so changes nothing and publishes nothing.
    await writeCourseEnrollments(t, p1, c2, [learner]);
    await writeCourseEnrollments(t, p2, c1, [learner]);
    expect(await newFacts()).toEqual([]);
  });

  it('deactivation publishes changed with is_active false; revoking the role publishes removed', async () => {
    const u = account.user_id;
    await writeCourseEnrollments(t, p2, c3, [{ student_key: learner, status: 'inactive' }]);
    await writeCourseEnrollments(t, p1, c1, [{ student_key: learner, status: 'inactive', course_staff: false }]);
    expect(await newFacts()).toEqual(
      [
        `course.enrollment.changed ${u} ${c3} masters false`,
        `user.course_access_role.removed ${u} ${c1} staff ${org}`,
      ].sort(),
    );
  });

  it('a verified CE kept, course-enrollment-changed and a replayed job or event publish nothing', async () => {
    const key = uniqueKey('verified');
    const other = await announceLearner(t, key, org);
    await courseEnrollmentChanged(t, { user_id: other.user_id, course_key: c1, mode: 'verified', is_active: true });
    await courseEnrollmentChanged(t, { user_id: account.user_id, course_key: c2, mode: 'verified', is_active: true });
    await writeEnrollments(t, p1, [key]);
    await writeCourseEnrollments(t, p1, c1, [key]);
    const [ce] =
      await t.sql`select mode, is_active from course_enrollments where user_id = ${other.user_id} and course_key = ${c1}`;
    expect(ce).toEqual({ mode: 'verified', is_active: true });
    expect(await newFacts()).toEqual([]);

    // A job that published, run again under its jobId after BullMQ forgot it: same result, no event.
    const jobId = `grant-${randomUUID()}`;
    const first = await enrollCourseOk(
      t,
      p1.program_uuid,
      c1,
      [{ student_key: key, status: 'active', course_staff: true }],
      {
        job: { jobId },
      },
    );
    expect(await newFacts()).toEqual([`user.course_access_role.added ${other.user_id} ${c1} staff ${org}`]);
    await (await t.queues.enrollments.getJob(jobId))!.remove();
    const again = await enrollCourseOk(
      t,
      p1.program_uuid,
      c1,
      [{ student_key: key, status: 'active', course_staff: true }],
      {
        job: { jobId },
      },
    );
    expect(again).toEqual(first);
    // An account event replayed under its event_id.
    const eventId = randomUUID();
    const fresh = newAccount('late');
    const lateKey = uniqueKey('late');
    await writeEnrollments(t, p1, [lateKey]);
    await writeCourseEnrollments(t, p1, c2, [lateKey]);
    const identity = [{ organization_key: org, external_user_key: lateKey }];
    completed(await accountCreated(t, fresh, identity, eventId));
    expect(await newFacts()).toEqual([`course.enrollment.created ${fresh.user_id} ${c2} masters true`]);
    completed(await accountCreated(t, fresh, identity, eventId));
    expect(await newFacts()).toEqual([]);
  });

  it('retirement and expiry change no CE and publish nothing', async () => {
    completed(await t.run('enrollments', 'retire-learner', { user_id: account.user_id }));
    const waiting = uniqueKey('expiring');
    await writeEnrollments(t, p1, [waiting]);
    await writeCourseEnrollments(t, p1, c1, [{ student_key: waiting, status: 'active', course_staff: true }]);
    await agePe(t, (await getPe(t, p1.program_uuid, waiting)).id, 30);
    const expiry = completed(await t.run('enrollments', 'expire-waiting-enrollments', { expiration_days: 20 }));
    expect(expiry).toMatchObject({ removed: { program_enrollments: 1, program_course_enrollments: 1 } });
    expect(await newFacts()).toEqual([]);
  });

  it('every entry read is an outbox event, once, and /metrics counts them by type with no backlog', async () => {
    const rows = await outboxRows(t.sql);
    expect(consumed.map((e) => e.id).sort()).toEqual(rows.map((r) => r.event_id).sort());
    expect(new Set(consumed.map((e) => e.id)).size).toBe(consumed.length);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    const published = (type: string) =>
      Number(
        metrics.match(
          new RegExp(`^program_enrollments_events_published_total\\{type="${type}"\\} (\\d+)$`, 'm'),
        )?.[1] ?? 0,
      );
    for (const type of new Set(rows.map((r) => r.event_type)))
      expect(published(type), type).toBe(rows.filter((r) => r.event_type === type).length);
    expect(metrics).toMatch(/^program_enrollments_outbox_backlog 0$/m);
    expect(metrics).toMatch(/^program_enrollments_outbox_oldest_unpublished_seconds 0$/m);
  });
});

describe('EVENT_BUS=off', () => {
  it('writes no outbox events and publishes nothing', async () => {
    const prefix = newPrefix();
    const service = await startServiceOn(t, prefix, { EVENT_BUS: 'off' });
    const { queues, close } = await queuesOn(prefix);
    try {
      const before = await untilAllPublished(t.sql);
      const key = uniqueKey('quiet');
      await writeEnrollments(t, p1, [key]);
      const quiet = await announceLearner(t, key, org);
      const job = await queues.enrollments.add('write-program-course-enrollments', {
        program_uuid: p1.program_uuid,
        course_key: c2,
        action: 'create_or_update',
        enrollments: [{ student_key: key, status: 'active', course_staff: true }],
      });
      const done = await waitJob(queues.enrollments, job);
      expect(completed(done).results).toEqual({ [key]: 'active' });
      const [ce] = await t.sql`
        select mode, is_active from course_enrollments where user_id = ${quiet.user_id} and course_key = ${c2}`;
      expect(ce).toEqual({ mode: 'masters', is_active: true });
      const [role] = await t.sql`
        select count(*)::int as n from course_staff_roles where user_id = ${quiet.user_id} and course_key = ${c2}`;
      expect(role!.n).toBe(1);
      expect((await outboxRows(t.sql)).length).toBe(before);
    } finally {
      await close();
      await service.stop();
    }
  });
});

describe('retention', () => {
  it('the daily maintenance deletes published events older than the retention, and keeps pending ones however old', async () => {
    await untilAllPublished(t.sql);
    const batchIds = async () => [...new Set((await outboxRows(t.sql)).map((r) => r.id))];
    const before = await batchIds();
    // A batch that waits (as behind a full stream): its topic is none the relay publishes.
    const [waiting] = await t.sql<{ id: number }[]>`
      with b as (
        insert into outbox_batches (topic, event_count, event_ids, event_types, user_ids, course_keys, modes, is_active,
                                    org_keys, usernames, emails, enrolled_at)
        values ('no-such-topic', 1, array[gen_random_uuid()], array['org.openedx.learning.course.enrollment.created.v1'],
                array[1]::bigint[], array[${c1}], array['masters'], array[true], array[null]::text[], array['u'],
                array[''], array[now()])
        returning id)
      insert into outbox_unpublished (batch_id, topic) select id, 'no-such-topic' from b returning batch_id::float8 as id`;
    const old = before.slice(0, 2);
    // Past the default retention of 7 days.
    await t.sql`
      update outbox_batches set occurred_at = now() - interval '8 days'
      where id = any(${[...old, waiting!.id]}::bigint[])`;
    try {
      completed(await t.run('enrollments', 'expire-waiting-enrollments', { expiration_days: 20 }));
      expect(await batchIds()).toEqual([...before.filter((id) => !old.includes(id)), waiting!.id]);
      expect((await outboxRows(t.sql)).at(-1)!.published).toBe(false);
    } finally {
      await t.sql`delete from outbox_unpublished where batch_id = ${waiting!.id}`;
      await t.sql`delete from outbox_batches where id = ${waiting!.id}`;
    }
  });
});
