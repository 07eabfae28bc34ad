import type { EventType, Topic } from '../contract/outbound-events.js';
import type { Database } from '../db/client.js';
import { EventBusUnavailableError, type EventStreams } from '../infra/event-bus.js';
import type { Logger } from '../log.js';
import { type PublishSettings, publishRound } from '../use-cases/publish-events.js';

/** How often an idle relay looks for new events: well within the contract's 5 seconds from commit. */
const IDLE_POLL_MS = 250;
/**
 * How soon a relay that has just published looks again: events come in runs (the chunks of a bulk
 * write, every 100 ms or so), so it looks again soon and backs off, doubling, to IDLE_POLL_MS
 * while it finds nothing. The last chunk's events then go out tens of milliseconds after their
 * commit instead of up to IDLE_POLL_MS later.
 */
const BUSY_POLL_MS = 20;
/** How long the relay waits before trying again after Redis or Postgres failed. */
const RETRY_MS = 1_000;

export interface EventRelay {
  /** Finishes the round in progress and stops. */
  stop(): Promise<void>;
}

/**
 * The relay of every process (contract.md "Outbound events"): publishes the outbox in rounds.
 * Rounds follow each other at once while rows are waiting; otherwise it looks again shortly. An
 * event bus that is away, or a stream full of undelivered entries, makes it wait with one log
 * line when that starts and one when it ends. Only the process whose round holds the leadership
 * publishes (use-cases/publish-events.ts); the others find nothing to do.
 */
export function startEventRelay(deps: {
  database: Database;
  streams: EventStreams;
  settings: PublishSettings;
  log: Logger;
  /** Told the events each round published, by type (the process's metrics count them). */
  onPublished: (published: ReadonlyMap<EventType, number>) => void;
  /** Settles once the event bus connection is first up (or given up on): no outage is reported before. */
  connected: Promise<unknown>;
}): EventRelay {
  const { database, streams, settings, log, onPublished } = deps;
  let stopped = false;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  let busAway = false;
  let databaseAway = false;
  let full = new Set<Topic>();

  const loop = async () => {
    await Promise.race([deps.connected.catch(() => {}), new Promise<void>((resolve) => (wake = resolve))]);
    let pollMs = IDLE_POLL_MS;
    while (!stopped) {
      let more = false;
      try {
        const round = await publishRound(database, streams, settings);
        if (databaseAway) log.info('outbox readable again: publishing resumes');
        databaseAway = false;
        // Only a round that led spoke to the event bus.
        if (round.led) {
          if (busAway) log.info('event bus reachable again: publishing resumes');
          busAway = false;
          const nowFull = new Set(round.full);
          for (const topic of nowFull)
            if (!full.has(topic))
              log.warn(
                { topic, limit: settings.maxUndelivered },
                'event stream holds the most undelivered entries allowed: publishing to it pauses',
              );
          for (const topic of full)
            if (!nowFull.has(topic)) log.info({ topic }, 'event stream has room: publishing resumes');
          full = nowFull;
        }
        if (round.published.size > 0) onPublished(round.published);
        more = round.more;
        pollMs = round.published.size > 0 ? BUSY_POLL_MS : Math.min(IDLE_POLL_MS, pollMs * 2);
      } catch (err) {
        if (err instanceof EventBusUnavailableError) {
          if (!busAway) log.warn({ err: err.message }, 'event bus unreachable: publishing waits');
          busAway = true;
        } else {
          if (!databaseAway) log.warn({ err: (err as Error).message }, 'outbox unreadable: publishing waits');
          databaseAway = true;
        }
        if (!stopped) await pause(RETRY_MS);
        continue;
      }
      if (!stopped && !more) await pause(pollMs);
    }
  };
  const running = loop();
  return {
    async stop() {
      stopped = true;
      wake?.();
      await running;
    },
  };
}
