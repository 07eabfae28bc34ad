/** Reading the outbound events: the outbox in Postgres, the streams in Redis, and an LMS-like consumer. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { Sql } from 'postgres';
import { ENROLLMENT_TOPIC, ROLE_TOPIC, streamKey } from '../../src/contract/outbound-events.js';
import { waitFor } from './service.js';

/** An event of the outbox: its batch's `id`, and its `position` in the batch (from 1). */
export interface OutboxRow {
  id: number;
  position: number;
  event_id: string;
  event_type: string;
  topic: string;
  user_id: number;
  course_key: string;
  mode: string | null;
  is_active: boolean | null;
  org_key: string | null;
  username: string;
  email: string;
  enrolled_at: Date | null;
  occurred_at: Date;
  /** Whether the relay has published it (its batch's `outbox_unpublished` row is gone or counts it). */
  published: boolean;
}

/** The test's two streams (the service's topic prefix is the test's queue prefix). */
export function streamsOf(prefix: string): { enrollments: string; roles: string } {
  return { enrollments: streamKey(prefix, ENROLLMENT_TOPIC), roles: streamKey(prefix, ROLE_TOPIC) };
}

/** The events of the outbox batches after `afterId`, one row each, in publishing order. */
export function outboxRows(sql: Sql, afterId = 0): Promise<OutboxRow[]> {
  return sql<OutboxRow[]>`
    select b.id::float8 as id, e.position::int as position, e.event_id, e.event_type, b.topic,
           e.user_id::float8 as user_id, e.course_key, e.mode, e.is_active, e.org_key, e.username, e.email,
           e.enrolled_at, b.occurred_at,
           not exists (select from outbox_unpublished u where u.batch_id = b.id and u.published < e.position) as published
    from outbox_batches b,
         unnest(b.event_ids, b.event_types, b.user_ids, b.course_keys, b.modes, b.is_active, b.org_keys, b.usernames,
                b.emails, b.enrolled_at)
           with ordinality as e(event_id, event_type, user_id, course_key, mode, is_active, org_key, username, email,
                                enrolled_at, position)
    where b.id > ${afterId} order by b.id, e.position`;
}

/** Waits until every outbox event is published; returns how many events there are. */
export async function untilAllPublished(sql: Sql, timeoutMs = 30_000): Promise<number> {
  return waitFor(
    async () => {
      const [row] = await sql<{ total: number; waiting: number }[]>`
        select (select coalesce(sum(event_count), 0) from outbox_batches)::int as total,
               (select count(*) from outbox_unpublished)::int as waiting`;
      return row!.waiting === 0 ? row!.total : undefined;
    },
    timeoutMs,
    'every outbox event to be published',
    50,
  );
}

/** An entry as the LMS-like consumer read and decoded it. */
export interface ConsumedEntry {
  stream: string;
  entry_id: string;
  type: string;
  id: string;
  source: string;
  time: string;
  minorversion: string;
  sourcehost: string;
  sourcelib: string;
  data: any;
}

/**
 * Runs test/support/lms_consumer.py with Debian's python3 (python3-redis, python3-avro): reads
 * `count` entries of `streams` through consumer group `group` (created on first use) and decodes
 * every one with the reference's schemas. Fails the test when the consumer could not.
 */
export async function consumeAsLms(
  redisUrl: string,
  group: string,
  count: number,
  streams: string[],
  timeoutS = 30,
): Promise<ConsumedEntry[]> {
  const script = path.join(import.meta.dirname, 'lms_consumer.py');
  const child = spawn('/usr/bin/python3', [script, redisUrl, group, String(count), String(timeoutS), ...streams], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`the LMS-like consumer failed (${code}): ${err}`);
  return (JSON.parse(out) as { entries: ConsumedEntry[] }).entries;
}

/** Every entry of a stream, oldest first, as [entry id, fields] with `event_data` left out. */
export async function streamEntries(
  redis: Redis,
  stream: string,
): Promise<Array<{ entryId: string; id: string; type: string }>> {
  const entries = await redis.xrange(stream, '-', '+');
  return entries.map(([entryId, fields]) => {
    const get = (name: string) => fields[fields.indexOf(name) + 1]!;
    return { entryId, id: get('id'), type: get('type') };
  });
}

/** How many entries were ever added to a stream (trimming does not lower it); 0 for no stream. */
export async function entriesAdded(redis: Redis, stream: string): Promise<number> {
  if (!(await redis.exists(stream))) return 0;
  const info = (await redis.xinfo('STREAM', stream)) as unknown[];
  return Number(info[info.indexOf('entries-added') + 1]);
}
