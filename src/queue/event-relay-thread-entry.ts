/**
 * The worker thread of event-relay-thread.ts: runs the event relay (event-relay.ts) on connections
 * of its own, tells the process what each round published, and stops when told to, after the
 * round in progress.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { connectDatabase } from '../db/client.js';
import { EventStreams } from '../infra/event-bus.js';
import { connectRedis, untilReady } from '../infra/redis.js';
import { startEventRelay } from './event-relay.js';
import type { EventRelayThreadOptions, RelayThreadMessage } from './event-relay-thread.js';

const options = workerData as EventRelayThreadOptions;
const port = parentPort!;
const tell = (message: RelayThreadMessage) => port.postMessage(message);

// Two connections: a round's transaction, and the next round's while the first one ends.
const database = connectDatabase(options.databaseUrl, { max: 2 });
// Fail-fast: a publishing round must not wait on an event bus that is away. Its errors are not
// logged one by one; the relay logs each outage once.
const eventBus = connectRedis(options.eventBus, { forWorker: false, name: 'event-bus' });
eventBus.on('error', () => {});

const relay = startEventRelay({
  database,
  streams: new EventStreams(eventBus),
  settings: options.settings,
  // Its lines go to the process, whose logger writes them (event-relay-thread.ts).
  log: pino({ level: options.logLevel, base: null }, { write: (line: string) => tell({ logLine: line }) }),
  onPublished: (published) => tell({ published: [...published] }),
  connected: untilReady(eventBus),
});

port.on('message', async (message: { stop?: boolean }) => {
  if (!message.stop) return;
  await relay.stop();
  eventBus.disconnect();
  await database.close();
  port.close();
});
