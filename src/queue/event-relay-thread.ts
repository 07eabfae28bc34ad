import { Worker } from 'node:worker_threads';
import type { Level } from 'pino';
import type { EventType } from '../contract/outbound-events.js';
import type { RedisTarget } from '../infra/redis.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { PublishSettings } from '../use-cases/publish-events.js';
import type { EventRelay } from './event-relay.js';

/**
 * The event relay (event-relay.ts) on a worker thread of its own, with its own Postgres connections
 * and event bus connection. Its work, about 5 ms of JavaScript per 1,000 events (reading the
 * batches, the Avro encoding, building the script call) and the garbage it leaves, ran on the
 * event loop of the jobs and stalled their round trips while a bulk write published: the cost of
 * the outbound events was mostly that (README "Performance").
 */
export interface EventRelayThreadOptions {
  databaseUrl: string;
  eventBus: RedisTarget;
  settings: PublishSettings;
  /** The level of the process's logger, which writes the thread's lines. */
  logLevel: string;
}

/** What the thread tells the process: a round's events by type, or a log line (pino's JSON). */
export type RelayThreadMessage = { published: Array<[EventType, number]> } | { logLine: string };

/** The old-space bound of the thread's heap, MiB: a round holds at most a few thousand events. */
const THREAD_HEAP_MIB = 64;
/**
 * How long after a thread stopped unexpectedly it is started again: a second, doubling while each
 * new thread stops within MAX_RESTART_MS of its start, so that a thread that cannot start logs a
 * line every half minute at most.
 */
const RESTART_MS = 1_000;
const MAX_RESTART_MS = 30_000;

/**
 * The thread's entry point. Under tsx (npm start, the tests) the source is TypeScript and the
 * thread needs the loader first (`event-relay-thread-boot.mjs`); built with `npm run build`, the
 * entry is the compiled `event-relay-thread-entry.js` next to this file, run by plain Node.
 */
export function relayThreadEntry(moduleUrl: string = import.meta.url): URL {
  return moduleUrl.endsWith('.ts')
    ? new URL('./event-relay-thread-boot.mjs', moduleUrl)
    : new URL('./event-relay-thread-entry.js', moduleUrl);
}

/** Writes a line the thread logged with the process's logger (its fields, redaction and destination). */
function relayLog(log: Logger, line: string): void {
  const { level, msg, time: _time, pid: _pid, hostname: _hostname, ...fields } = JSON.parse(line);
  const label = (log.levels.labels[level] ?? 'info') as Level;
  log[label](fields, msg);
}

/**
 * Starts the relay thread; a thread that stops unexpectedly is started again (one log line each
 * time). `stop` lets the thread finish its round and close its connections.
 */
export function startEventRelayThread(
  options: EventRelayThreadOptions,
  deps: { log: Logger; metrics: Metrics },
): EventRelay {
  const { log, metrics } = deps;
  let stopping = false;
  let worker: Worker | undefined;
  let exited: Promise<void> = Promise.resolve();
  let restartTimer: NodeJS.Timeout | undefined;
  let restartMs = RESTART_MS;

  const start = () => {
    const startedAt = Date.now();
    const thread = new Worker(relayThreadEntry(), {
      workerData: options,
      resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MIB },
    });
    worker = thread;
    thread.on('message', (message: RelayThreadMessage) => {
      if ('published' in message) for (const [type, n] of message.published) metrics.eventsPublished.inc({ type }, n);
      else relayLog(log, message.logLine);
    });
    thread.on('error', (err) => log.error({ err: err.message }, 'event relay thread failed'));
    exited = new Promise((resolve) =>
      thread.once('exit', (code) => {
        worker = undefined;
        resolve();
        if (stopping) return;
        if (Date.now() - startedAt >= MAX_RESTART_MS) restartMs = RESTART_MS;
        log.error({ code, restartInMs: restartMs }, 'event relay thread stopped: starting it again');
        restartTimer = setTimeout(start, restartMs);
        restartMs = Math.min(restartMs * 2, MAX_RESTART_MS);
      }),
    );
  };
  start();

  return {
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      worker?.postMessage({ stop: true });
      await exited;
    },
  };
}
