/**
 * The outbox's insert (src/db/outbox.ts): one batch a topic, the events of each in the order given,
 * with the account's details and the CE's creation time as they are in the transaction. The
 * service's writes each insert events of one topic; the insert takes any mix.
 */
import { describe, expect, it } from 'vitest';
import {
  ENROLLMENT_CHANGED,
  ENROLLMENT_CREATED,
  ENROLLMENT_TOPIC,
  ROLE_ADDED,
  ROLE_REMOVED,
  ROLE_TOPIC,
} from '../src/contract/outbound-events.js';
import { insertOutboxEvents } from '../src/db/outbox.js';
import { outboxRows } from './support/event-bus.js';
import { useTestService } from './support/service.js';

// EVENT_BUS=off: no relay publishes (or marks) the rows this test reads.
const t = useTestService({ EVENT_BUS: 'off' });

describe('insertOutboxEvents', () => {
  it('writes one batch a topic, each in the order given, with the account and the CE as they are', async () => {
    const [ada, bob] = [71_000_001, 71_000_002];
    await t.sql`
      insert into accounts (user_id, username, email)
      values (${ada}, 'ada-outbox', 'ada@example.com'), (${bob}, 'bob-outbox', null)`;
    const [ce] = await t.sql<{ created_at: Date }[]>`
      insert into course_enrollments (user_id, course_key, mode, is_active, created_at)
      values (${bob}, 'course-v1:O+B+R', 'masters', false, '2026-01-02T03:04:05Z') returning created_at`;
    const before = (await outboxRows(t.sql)).at(-1)?.id ?? 0;
    const at = await t.sql.begin(async (tx) => {
      await insertOutboxEvents(tx, [
        {
          type: ENROLLMENT_CREATED,
          userId: ada,
          courseKey: 'course-v1:O+A+R',
          mode: 'masters',
          isActive: true,
          orgKey: null,
        },
        { type: ROLE_ADDED, userId: ada, courseKey: 'course-v1:O+A+R', mode: null, isActive: null, orgKey: 'O' },
        {
          type: ENROLLMENT_CHANGED,
          userId: bob,
          courseKey: 'course-v1:O+B+R',
          mode: 'masters',
          isActive: false,
          orgKey: null,
        },
        { type: ROLE_REMOVED, userId: bob, courseKey: 'course-v1:O+B+R', mode: null, isActive: null, orgKey: 'O' },
      ]);
      const [row] = await tx<{ now: Date }[]>`select now()`;
      return row!.now;
    });
    const rows = await outboxRows(t.sql, before);
    const batches = [...new Set(rows.map((r) => r.id))];
    expect(batches).toHaveLength(2);
    const summary = rows.map((r) => ({
      batch: batches.indexOf(r.id),
      position: r.position,
      topic: r.topic,
      type: r.event_type,
      user: r.user_id,
      mode: r.mode,
      is_active: r.is_active,
      org: r.org_key,
      username: r.username,
      email: r.email,
      enrolled_at: r.enrolled_at?.toISOString() ?? null,
      published: r.published,
    }));
    const enrollments = summary.filter((r) => r.topic === ENROLLMENT_TOPIC);
    const roles = summary.filter((r) => r.topic === ROLE_TOPIC);
    expect(enrollments.map(({ batch, ...r }) => r)).toEqual([
      {
        position: 1,
        topic: ENROLLMENT_TOPIC,
        type: ENROLLMENT_CREATED,
        user: ada,
        mode: 'masters',
        is_active: true,
        org: null,
        username: 'ada-outbox',
        email: 'ada@example.com',
        enrolled_at: at.toISOString(),
        published: false,
      },
      {
        position: 2,
        topic: ENROLLMENT_TOPIC,
        type: ENROLLMENT_CHANGED,
        user: bob,
        mode: 'masters',
        is_active: false,
        org: null,
        username: 'bob-outbox',
        email: '',
        enrolled_at: ce!.created_at.toISOString(),
        published: false,
      },
    ]);
    expect(roles.map(({ batch, ...r }) => r)).toEqual([
      {
        position: 1,
        topic: ROLE_TOPIC,
        type: ROLE_ADDED,
        user: ada,
        mode: null,
        is_active: null,
        org: 'O',
        username: 'ada-outbox',
        email: 'ada@example.com',
        enrolled_at: null,
        published: false,
      },
      {
        position: 2,
        topic: ROLE_TOPIC,
        type: ROLE_REMOVED,
        user: bob,
        mode: null,
        is_active: null,
        org: 'O',
        username: 'bob-outbox',
        email: '',
        enrolled_at: null,
        published: false,
      },
    ]);
    // Each batch's events share one batch and have distinct ids.
    expect(new Set(enrollments.map((r) => r.batch)).size).toBe(1);
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(4);
  });
});
