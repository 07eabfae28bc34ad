import {
  type EventType,
  streamEntryTemplate,
  streamEntryValues,
  streamKey,
  TOPICS,
  type Topic,
} from '../contract/outbound-events.js';
import type { Database } from '../db/client.js';
import { markPublished, tryLeadRelay, type UnpublishedEvent, unpublishedEvents } from '../db/outbox.js';
import { eventData } from '../domain/course-access-events.js';
import type { EventStreams } from '../infra/event-bus.js';

export interface PublishSettings {
  topicPrefix: string | undefined;
  /** Undelivered entries a stream may hold (contract: 1,000,000). */
  maxUndelivered: number;
  /** Rows per round: one append script call per stream (infra/event-bus.ts). */
  batchSize: number;
  /** The `sourcehost` field. */
  sourceHost: string;
}

export interface PublishRound {
  /** False when another process's relay is publishing: this one has nothing to do. */
  led: boolean;
  /** Events published by this round, by type. */
  published: Map<EventType, number>;
  /** Topics whose stream is full of undelivered entries: their events wait in Postgres. */
  full: Topic[];
  /** True when the round was cut by the batch size: more rows are waiting. */
  more: boolean;
}

/**
 * One round of the relay: the oldest unpublished rows, in `id` order (the commit order per account
 * and course, db/outbox.ts), appended to their streams and marked published in one transaction.
 * The transaction holds the relay's leadership, so only one process publishes a given row. A
 * crash after the XADDs and before the commit publishes the rows again in the next round, with the
 * same `id` fields (at least once, contract.md "Outbound events").
 */
export async function publishRound(
  database: Database,
  streams: EventStreams,
  settings: PublishSettings,
): Promise<PublishRound> {
  return database.sql.begin(async (tx) => {
    const round: PublishRound = { led: false, published: new Map(), full: [], more: false };
    if (!(await tryLeadRelay(tx))) return round;
    round.led = true;
    const rooms = await Promise.all(
      TOPICS.map((topic) => streams.room(streamKey(settings.topicPrefix, topic), settings.maxUndelivered)),
    );
    const room = new Map(TOPICS.map((topic, i) => [topic, rooms[i]!]));
    round.full = TOPICS.filter((topic) => room.get(topic)! <= 0);
    const open = TOPICS.filter((topic) => room.get(topic)! > 0);
    if (open.length === 0) return round;

    const rows = await unpublishedEvents(tx, open, settings.batchSize);
    // A full stream takes what it has room for; the rest of its rows (all later than those) wait,
    // so its events still go out in order.
    const chosen: UnpublishedEvent[] = [];
    for (const row of rows) {
      const left = room.get(row.topic)!;
      if (left <= 0) continue;
      room.set(row.topic, left - 1);
      chosen.push(row);
    }
    const template = streamEntryTemplate(settings.sourceHost);
    await Promise.all(
      open.map((topic) =>
        streams.append(
          streamKey(settings.topicPrefix, topic),
          template,
          chosen
            .filter((row) => row.topic === topic)
            .map((row) =>
              streamEntryValues({ id: row.eventId, type: row.type, time: row.occurredAt, data: eventData(row) }),
            ),
        ),
      ),
    );
    await markPublished(
      tx,
      chosen.map((row) => row.id),
    );
    round.more = rows.length === settings.batchSize && chosen.length > 0;
    for (const row of chosen) round.published.set(row.type, (round.published.get(row.type) ?? 0) + 1);
    return round;
  });
}
