import { randomUUID } from 'node:crypto';
import {
  ENROLLMENT_CHANGED,
  ENROLLMENT_CREATED,
  type EventType,
  TOPIC_OF,
  type Topic,
} from '../contract/outbound-events.js';
import type { CourseAccessEvent, StoredCourseAccessEvent } from '../domain/course-access-events.js';
import type { Queryable, Tx } from './client.js';

/**
 * The outbox of the outbound events (contract.md "Outbound events"). The events a statement writes
 * are stored together, one batch row per topic, in the transaction of the change they report, and
 * published by one relay at a time.
 *
 * Order per account and course. The relay publishes batches in `id` order, and the events of a
 * batch in their order; only one relay runs at a time (`tryLeadRelay`). A bigserial is not commit
 * order in general: a transaction may take an id, and commit after one that took a later id. But
 * two transactions that write events of the same account and course both hold a row lock on that
 * pair first: the course enrollment row (locked `for update`, or being inserted, which makes a
 * concurrent insert wait) for enrollment events, the `course_staff_roles` row (being inserted or
 * deleted) for role events. The second one inserts its batch only after the first has committed,
 * so its id is higher and, once it is visible, the first one's batch is visible too. Publishing in
 * `id` order therefore publishes the events of one account and course in commit order, whatever
 * the relay's snapshot. A batch's `outbox_unpublished` row, which the relay reads it through, is
 * inserted by the same statement, so the same holds of it.
 */

/**
 * Inserts the events of one write, in the order given, as one batch a topic, each wholly
 * unpublished, in one statement (none when there are none). The arrays of each batch are sent as
 * they are; only the account's details and the CE's creation time are gathered here, in the
 * events' order. The account is looked up row by row, through the primary key: `lateral … offset
 * 0` keeps each lookup a parameterized index scan, which the planner may not turn into a join (as a
 * plain join it walked `accounts` from its first key for every chunk). A CE's creation time is
 * looked up only for `changed` events: a `created` event's CE was inserted by this transaction, so
 * its `created_at` is the transaction's `now()`. The events' ids are drawn here: `gen_random_uuid()`
 * in the statement took a quarter of its time, and gathering every array in the statement (an
 * ordered `array_agg` each, a sort each) another quarter.
 */
export async function insertOutboxEvents(tx: Tx, events: readonly CourseAccessEvent[]): Promise<void> {
  if (events.length === 0) return;
  const byTopic = new Map<Topic, CourseAccessEvent[]>();
  for (const event of events) {
    const topic = TOPIC_OF[event.type];
    const list = byTopic.get(topic);
    if (list) list.push(event);
    else byTopic.set(topic, [event]);
  }
  const batches = [...byTopic].map(
    ([topic, list]) => tx`
      select ${topic}::text, ${list.length}::int, ${list.map(() => randomUUID())}::uuid[], p.types, p.user_ids,
             p.course_keys, ${list.map((e) => e.mode)}::text[],
             ${list.map((e) => (e.isActive === null ? null : String(e.isActive)))}::text[]::boolean[],
             ${list.map((e) => e.orgKey)}::text[], l.usernames, l.emails, l.enrolled_at
      from (
        select ${list.map((e) => e.type)}::text[] as types, ${list.map((e) => e.userId)}::bigint[] as user_ids,
               ${list.map((e) => e.courseKey)}::text[] as course_keys
      ) p,
      lateral (
        select array_agg(coalesce(a.username, '') order by v.n) as usernames,
               array_agg(coalesce(a.email, '') order by v.n) as emails,
               array_agg(case when v.type = ${ENROLLMENT_CREATED} then now() else ce.created_at end order by v.n) as enrolled_at
        from unnest(p.types, p.user_ids, p.course_keys) with ordinality as v(type, user_id, course_key, n)
        left join lateral (select username, email from accounts where user_id = v.user_id offset 0) a on true
        left join lateral (
          select created_at from course_enrollments
          where v.type = ${ENROLLMENT_CHANGED} and user_id = v.user_id and course_key = v.course_key offset 0
        ) ce on true
      ) l`,
  );
  await tx`
    with inserted as (
      insert into outbox_batches (topic, event_count, event_ids, event_types, user_ids, course_keys, modes, is_active,
                                  org_keys, usernames, emails, enrolled_at)
      ${batches.reduce((all, batch) => tx`${all} union all ${batch}`)}
      returning id, topic
    )
    insert into outbox_unpublished (batch_id, topic) select id, topic from inserted`;
}

/** An advisory lock key of its own: the relay's leadership. */
const RELAY_LOCK_KEY = 7_104_202_611;

/**
 * Makes the calling transaction the only relay publishing until it ends. Transaction-level, so a
 * relay that dies (process killed, connection lost) lets go at once and another takes over.
 */
export async function tryLeadRelay(tx: Tx): Promise<boolean> {
  const [row] = await tx<{ lead: boolean }[]>`select pg_try_advisory_xact_lock(${RELAY_LOCK_KEY}) as lead`;
  return row!.lead;
}

export interface UnpublishedEvent extends StoredCourseAccessEvent {
  eventId: string;
  occurredAt: Date;
}

/** A batch with events still to publish: those from `published` on, in their order. */
export interface UnpublishedBatch {
  id: number;
  /** How many of the batch's events were published before: the first ones. */
  published: number;
  /** The events not published yet, in the batch's order. */
  events: UnpublishedEvent[];
}

/**
 * The oldest batches of `topic` with unpublished events, in publishing (`id`) order, as many as
 * hold about `limit` events: every batch that starts within its first `limit` unpublished events,
 * so at least one whatever its size. The unpublished ids are read from the topic's index, so the
 * other topic's backlog is never walked, and each batch is looked up in the outbox by its primary
 * key (`lateral … offset 0`: as a plain join, the planner merged the two primary keys and walked
 * every published batch first).
 */
export async function unpublishedBatches(tx: Tx, topic: Topic, limit: number): Promise<UnpublishedBatch[]> {
  // Times as epoch milliseconds: the pool reads timestamps as text.
  const rows = await tx<
    Array<{
      id: number;
      published: number;
      eventIds: string[];
      types: EventType[];
      userIds: number[];
      courseKeys: string[];
      modes: Array<string | null>;
      isActive: Array<boolean | null>;
      orgKeys: Array<string | null>;
      usernames: string[];
      emails: string[];
      enrolledMs: Array<number | null>;
      occurredMs: number;
    }>
  >`
    with next as (
      select batch_id, published, sum(unpublished) over (order by batch_id) - unpublished as before
      from (
        select u.batch_id, u.published, b.event_count - u.published as unpublished
        from (select batch_id, published from outbox_unpublished where topic = ${topic} order by batch_id limit ${limit}) u
        join lateral (select event_count from outbox_batches where id = u.batch_id offset 0) b on true
      ) open
    )
    select b.id, next.published, b.event_ids as "eventIds", b.event_types as types, b.user_ids as "userIds",
           b.course_keys as "courseKeys", b.modes, b.is_active as "isActive", b.org_keys as "orgKeys", b.usernames,
           b.emails, array(select (extract(epoch from t) * 1000)::float8 from unnest(b.enrolled_at) t) as "enrolledMs",
           (extract(epoch from b.occurred_at) * 1000)::float8 as "occurredMs"
    from next
    join lateral (select * from outbox_batches where id = next.batch_id offset 0) b on true
    where next.before < ${limit}
    order by b.id`;
  return rows.map((r) => {
    const occurredAt = new Date(r.occurredMs);
    const events: UnpublishedEvent[] = [];
    // Field by field: an object rest pattern here took a third of the relay's CPU.
    for (let i = r.published; i < r.eventIds.length; i++) {
      const enrolledMs = r.enrolledMs[i] ?? null;
      events.push({
        eventId: r.eventIds[i]!,
        type: r.types[i]!,
        userId: r.userIds[i]!,
        courseKey: r.courseKeys[i]!,
        mode: r.modes[i] ?? null,
        isActive: r.isActive[i] ?? null,
        orgKey: r.orgKeys[i] ?? null,
        username: r.usernames[i]!,
        email: r.emails[i]!,
        enrolledAt: enrolledMs === null ? null : new Date(enrolledMs),
        occurredAt,
      });
    }
    return { id: r.id, published: r.published, events };
  });
}

/**
 * Marks events published: the batches published to their end are no longer unpublished; of the
 * others, `published` counts the events published so far (the batches are not written again).
 */
export async function markPublished(
  tx: Tx,
  finished: readonly number[],
  partly: ReadonlyArray<{ id: number; published: number }>,
): Promise<void> {
  if (finished.length > 0)
    await tx`delete from outbox_unpublished where batch_id = any(${finished as number[]}::bigint[])`;
  if (partly.length > 0)
    await tx`
      update outbox_unpublished u set published = p.published
      from unnest(${partly.map((p) => p.id)}::bigint[], ${partly.map((p) => p.published)}::int[]) as p(id, published)
      where u.batch_id = p.id`;
}

/**
 * Deletes published batches whose events are older than the retention; returns how many events
 * went. A batch with an event still unpublished stays, however old. Once a day, so a scan of the
 * outbox, without an index of its own to keep up at every insert.
 */
export async function deletePublishedEvents(tx: Queryable, retentionDays: number): Promise<number> {
  const [row] = await tx<{ n: number }[]>`
    with deleted as (
      delete from outbox_batches b
      where b.occurred_at < now() - make_interval(secs => ${retentionDays * 86_400})
        and not exists (select from outbox_unpublished u where u.batch_id = b.id)
      returning event_count
    )
    select coalesce(sum(event_count), 0)::int as n from deleted`;
  return row!.n;
}

export interface OutboxBacklog {
  unpublished: number;
  /** Age of the oldest unpublished event, 0 when there is none. */
  oldestSeconds: number;
}

/** The unpublished batches, each looked up by primary key (as a join, the planner hashed the whole outbox). */
export async function outboxBacklog(sql: Queryable): Promise<OutboxBacklog> {
  const [row] = await sql<{ unpublished: number; oldestSeconds: number | null }[]>`
    select coalesce(sum(b.event_count - u.published), 0)::int as unpublished,
           extract(epoch from now() - min(b.occurred_at))::float8 as "oldestSeconds"
    from outbox_unpublished u
    join lateral (select event_count, occurred_at from outbox_batches where id = u.batch_id offset 0) b on true`;
  return { unpublished: row!.unpublished, oldestSeconds: Math.max(0, row!.oldestSeconds ?? 0) };
}
