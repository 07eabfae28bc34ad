/**
 * Trimming (contract.md "Outbound events", Delivery): a stream is trimmed only of entries every
 * consumer group has been delivered, and publishing pauses while it holds the most undelivered
 * entries allowed (1,000,000, lowered here to 50 by EVENT_BUS_MAX_UNDELIVERED), with no group or
 * with a group that reads nothing, and resumes by itself.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { outboxRows, streamsOf } from './support/event-bus.js';
import { completed, newCourseKey, newOrg, newProgram, type ProgramPayload, uniqueKey } from './support/fixtures.js';
import { useTestService, waitFor } from './support/service.js';

const LIMIT = 50;
const t = useTestService({ EVENT_BUS_MAX_UNDELIVERED: String(LIMIT) });
let redis: Redis;
let program: ProgramPayload;
let course: string;
let keys: string[];

/** The most entries each stream held, sampled every few milliseconds while the tests run. */
const most = { enrollments: 0, roles: 0 };
let sampling = true;
let sampler: Promise<void>;

async function published(): Promise<{ enrollments: number; roles: number }> {
  const rows = await t.sql<{ topic: string; n: number }[]>`
    select b.topic, sum(b.event_count - coalesce(u.unpublished, 0))::int as n
    from outbox_batches b
    left join lateral (
      select b.event_count - published as unpublished from outbox_unpublished where batch_id = b.id
    ) u on true
    group by b.topic`;
  const of = (suffix: string) => rows.find((r) => r.topic.endsWith(suffix))?.n ?? 0;
  return { enrollments: of('enrollment-lifecycle'), roles: of('role-lifecycle') };
}

function untilPublished(what: 'enrollments' | 'roles', n: number): Promise<true> {
  return waitFor(
    async () => ((await published())[what] === n ? true : undefined),
    30_000,
    `${n} ${what} published`,
    20,
  );
}

/** Reads up to `count` new entries of the enrollment stream as group `group`; returns their `id` fields. */
async function read(group: string, count: number): Promise<string[]> {
  const answer = (await redis.xreadgroup(
    'GROUP',
    group,
    'c1',
    'COUNT',
    count,
    'STREAMS',
    streamsOf(t.prefix).enrollments,
    '>',
  )) as Array<[string, Array<[string, string[]]>]> | null;
  return (answer?.[0]?.[1] ?? []).map(([, fields]) => fields[fields.indexOf('id') + 1]!);
}

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  const { enrollments, roles } = streamsOf(t.prefix);
  sampler = (async () => {
    while (sampling) {
      most.enrollments = Math.max(most.enrollments, await redis.xlen(enrollments));
      most.roles = Math.max(most.roles, await redis.xlen(roles));
      await new Promise((r) => setTimeout(r, 3));
    }
  })();
  // Two LMS groups on the enrollment stream before anything is published: one reads, one does not.
  await redis.xgroup('CREATE', enrollments, 'eager', '0', 'MKSTREAM');
  await redis.xgroup('CREATE', enrollments, 'lazy', '0', 'MKSTREAM');
  const org = newOrg();
  course = newCourseKey(org);
  program = await newProgram(t, { org, courses: [course] });
  keys = Array.from({ length: 120 }, () => uniqueKey('trim'));
  const users = keys.map((_, i) => 60_000_000 + i);
  await t.sql`
    insert into accounts (user_id, username, email)
    select u, 'user-' || u, null from unnest(${users}::bigint[]) as u`;
  await t.sql`
    insert into learners (organization_key, student_key, user_id)
    select ${org}, k, u from unnest(${keys}::text[], ${users}::bigint[]) as v(k, u)`;
  completed(
    await t.run('enrollments', 'write-program-enrollments', {
      program_uuid: program.program_uuid,
      action: 'create',
      enrollments: keys.map((student_key) => ({ student_key, status: 'enrolled' })),
    }),
  );
});

afterAll(async () => {
  sampling = false;
  await sampler;
  await redis?.quit();
});

describe('trimming and the undelivered limit', () => {
  it('a group that reads nothing: publishing stops at the limit, and nothing it has not had is trimmed', async () => {
    // 120 CEs created (and, with no group on the role stream, 60 staff roles).
    completed(
      await t.run('enrollments', 'write-program-course-enrollments', {
        program_uuid: program.program_uuid,
        course_key: course,
        action: 'create',
        enrollments: keys.map((student_key, i) => ({ student_key, status: 'active', course_staff: i % 2 === 0 })),
      }),
    );
    await untilPublished('enrollments', LIMIT);
    expect(await redis.xlen(streamsOf(t.prefix).enrollments)).toBe(LIMIT);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^program_enrollments_outbox_backlog ${120 - LIMIT + 60 - LIMIT}$`, 'm'));

    // The eager group has everything: the lazy one, nothing. Nothing may go.
    const eager = await read('eager', 1_000);
    expect(eager.length).toBe(LIMIT);
    // The lazy group takes 30: 30 entries every group has had go, 30 more come.
    const lazy = await read('lazy', 30);
    await untilPublished('enrollments', LIMIT + 30);
    expect(await redis.xlen(streamsOf(t.prefix).enrollments)).toBe(LIMIT);
    // Reading on, both groups get every event once, in the outbox's order: none was trimmed unread.
    await waitFor(
      async () => {
        eager.push(...(await read('eager', 1_000)));
        lazy.push(...(await read('lazy', 25)));
        return lazy.length === 120 && eager.length === 120 ? true : undefined;
      },
      30_000,
      'both groups to read all 120',
      20,
    );
    const rows = (await outboxRows(t.sql))
      .filter((r) => r.topic.endsWith('enrollment-lifecycle'))
      .map((r) => r.event_id);
    expect(lazy).toEqual(rows);
    expect(eager).toEqual(rows);
    expect(most.enrollments).toBeLessThanOrEqual(LIMIT);
    // Once every group has had everything, the stream is trimmed of all of it.
    await waitFor(
      async () => ((await redis.xlen(streamsOf(t.prefix).enrollments)) === 0 ? true : undefined),
      10_000,
      'trim',
      20,
    );
  });

  it('with no group at all, publishing stops at the limit and resumes when a group reads', async () => {
    const { roles } = streamsOf(t.prefix);
    await untilPublished('roles', LIMIT);
    expect(await redis.xlen(roles)).toBe(LIMIT);
    await redis.xgroup('CREATE', roles, 'lms', '0');
    const answer = (await redis.xreadgroup('GROUP', 'lms', 'c1', 'COUNT', 1_000, 'STREAMS', roles, '>')) as Array<
      [string, unknown[]]
    >;
    expect(answer[0]![1].length).toBe(LIMIT);
    await untilPublished('roles', 60);
    expect(most.roles).toBeLessThanOrEqual(LIMIT);
  });

  it('a full stream with more waiting batches than a round reads does not hold back the other stream', async () => {
    // The LMS group has had every role event: the role stream has room for 50 again.
    const { roles } = streamsOf(t.prefix);
    await redis.xreadgroup('GROUP', 'lms', 'c1', 'COUNT', 1_000, 'STREAMS', roles, '>');
    // 1,100 batches of the role stream wait, and the stream takes 50 of them: the other 1,050,
    // more than the relay reads in a round (1,000), wait ahead of the enrollment events below.
    await t.sql`
      with b as (
        insert into outbox_batches (topic, event_count, event_ids, event_types, user_ids, course_keys, modes, is_active,
                                    org_keys, usernames, emails, enrolled_at)
        select 'learning-course-access-role-lifecycle', 1, array[gen_random_uuid()],
               array['org.openedx.learning.user.course_access_role.added.v1'], array[60000000]::bigint[],
               array[${course}], array[null]::text[], array[null]::boolean[], array['org'], array['user-60000000'],
               array[''], array[null]::timestamptz[]
        from generate_series(1, 1100)
        returning id)
      insert into outbox_unpublished (batch_id, topic) select id, 'learning-course-access-role-lifecycle' from b`;
    await untilPublished('roles', 60 + LIMIT);
    expect(await redis.xlen(roles)).toBe(LIMIT);
    // 120 CEs deactivated: 120 changed events, of which the emptied enrollment stream takes 50.
    completed(
      await t.run('enrollments', 'write-program-course-enrollments', {
        program_uuid: program.program_uuid,
        course_key: course,
        action: 'update',
        enrollments: keys.map((student_key) => ({ student_key, status: 'inactive' })),
      }),
    );
    await untilPublished('enrollments', 120 + LIMIT);
    expect(await redis.xlen(streamsOf(t.prefix).enrollments)).toBe(LIMIT);
  });
});
