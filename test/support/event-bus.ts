/** Reading the outbound events: the outbox in Postgres, the streams in Redis, and an LMS-like consumer. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { Sql } from 'postgres';
import { ENROLLMENT_TOPIC, ROLE_TOPIC, streamKey } from '../../src/contract/outbound-events.js';
import { waitFor } from './service.js';

export interface OutboxRow {
  id: number;
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
  /** Whether the relay has published it (its `outbox_pending` row is gone). */
  published: boolean;
}

/** The test's two streams (the service's topic prefix is the test's queue prefix). */
export function streamsOf(prefix: string): { enrollments: string; roles: string } {
  return { enrollments: streamKey(prefix, ENROLLMENT_TOPIC), roles: streamKey(prefix, ROLE_TOPIC) };
}

export function outboxRows(sql: Sql, afterId = 0): Promise<OutboxRow[]> {
  return sql<OutboxRow[]>`
    select id::float8 as id, event_id, event_type, topic, user_id::float8 as user_id, course_key, mode, is_active,
           org_key, username, email, enrolled_at, occurred_at,
           not exists (select from outbox_pending p where p.id = outbox.id) as published
    from outbox where id > ${afterId} order by id`;
}

/** Waits until every outbox row is published; returns how many rows there are. */
export async function untilAllPublished(sql: Sql, timeoutMs = 30_000): Promise<number> {
  return waitFor(
    async () => {
      const [row] = await sql<{ total: number; waiting: number }[]>`
        select (select count(*) from outbox)::int as total, (select count(*) from outbox_pending)::int as waiting`;
      return row!.waiting === 0 ? row!.total : undefined;
    },
    timeoutMs,
    'every outbox row to be published',
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
