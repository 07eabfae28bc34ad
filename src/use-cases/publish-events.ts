import {
  type EventType,
  streamEntryTemplate,
  streamEntryValues,
  streamKey,
  TOPICS,
  type Topic,
} from '../contract/outbound-events.js';
import type { Database } from '../db/client.js';
import { markPublished, tryLeadRelay, type UnpublishedEvent, unpublishedBatches } from '../db/outbox.js';
import { eventData } from '../domain/course-access-events.js';
import type { EventStreams } from '../infra/event-bus.js';

export interface PublishSettings {
  topicPrefix: string | undefined;
  /** Undelivered entries a stream may hold (contract: 1,000,000). */
  maxUndelivered: number;
  /** Events per round, about (whole batches): one append script call per stream (infra/event-bus.ts). */
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
  /** True when the round was cut by the batch size: more events may be waiting. */
  more: boolean;
}

/**
 * One round of the relay: the events of the oldest unpublished batches, in `id` order and in their
 * order within a batch (the commit order per account and course, db/outbox.ts), appended to their
 * streams and marked published in one transaction.
 * The transaction holds the relay's leadership, so only one process publishes a given event. A
 * crash after the XADDs and before the commit publishes the events again in the next round, with the
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

    // Each open stream reads its own oldest events, as many as it has room for (at most a round's
    // worth): a stream whose consumers are slow never holds back the other one. A stream takes
    // what it has room for; the rest of its events (all later than those) wait, so its events
    // still go out in order.
    const template = streamEntryTemplate(settings.sourceHost);
    const finished: number[] = [];
    const partly: Array<{ id: number; published: number }> = [];
    const chosen = await Promise.all(
      open.map(async (topic) => {
        let left = Math.min(room.get(topic)!, settings.batchSize);
        const taken: UnpublishedEvent[] = [];
        for (const batch of await unpublishedBatches(tx, topic, left)) {
          if (left <= 0) break;
          const events = batch.events.length <= left ? batch.events : batch.events.slice(0, left);
          left -= events.length;
          for (const event of events) taken.push(event);
          if (events.length === batch.events.length) finished.push(batch.id);
          else partly.push({ id: batch.id, published: batch.published + events.length });
        }
        return taken;
      }),
    );
    await Promise.all(
      open.map((topic, i) =>
        streams.append(
          streamKey(settings.topicPrefix, topic),
          template,
          chosen[i]!.map((event) =>
            streamEntryValues({ id: event.eventId, type: event.type, time: event.occurredAt, data: eventData(event) }),
          ),
        ),
      ),
    );
    await markPublished(tx, finished, partly);
    round.more = chosen.some((events) => events.length >= settings.batchSize);
    for (const event of chosen.flat()) round.published.set(event.type, (round.published.get(event.type) ?? 0) + 1);
    return round;
  });
}
