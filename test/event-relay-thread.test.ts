/**
 * The event relay's thread (src/queue/event-relay-thread.ts): a thread that stops unexpectedly is
 * started again, later each time while it keeps stopping, and `stop` ends it for good. Publishing
 * itself is in outbound-events*.test.ts, through services that run the thread.
 */
import { pino } from 'pino';
import { expect, inject, it } from 'vitest';
import { createMetrics } from '../src/metrics.js';
import { startEventRelayThread } from '../src/queue/event-relay-thread.js';
import { waitFor } from './support/service.js';

it('starts a thread that stopped again, a second later and then two, and stop ends it', async () => {
  const lines: Array<{ msg: string; restartInMs?: number; time: number }> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const relay = startEventRelayThread(
    {
      // Not a URL: the thread fails as it starts, every time.
      databaseUrl: 'http://[not-a-url',
      eventBus: { url: inject('redisUrl'), clusterNodes: [] },
      settings: { topicPrefix: 'relay-thread-test', maxUndelivered: 10, batchSize: 10, sourceHost: 'test' },
      logLevel: 'info',
    },
    { log, metrics: createMetrics() },
  );
  const restarts = () => lines.filter((l) => l.msg === 'event relay thread stopped: starting it again');
  await waitFor(async () => (restarts().length >= 3 ? true : undefined), 15_000, 'three restarts', 20);
  const [first, second, third] = restarts();
  expect([first!.restartInMs, second!.restartInMs, third!.restartInMs]).toEqual([1_000, 2_000, 4_000]);
  // Each thread was started after the delay the one before announced.
  expect(second!.time - first!.time).toBeGreaterThanOrEqual(1_000);
  expect(third!.time - second!.time).toBeGreaterThanOrEqual(2_000);
  await relay.stop();
  const after = lines.length;
  // The fourth start was due when the third stop said (4 s after it): stopping cancelled it. A
  // thread started after all would fail within a second, as every one did above, and log it.
  // Nothing can be awaited for a start that must not happen: wait until it would have failed.
  const wouldHaveFailed = third!.time + third!.restartInMs! + 1_000;
  await new Promise((r) => setTimeout(r, Math.max(0, wouldHaveFailed - Date.now())));
  expect(lines.slice(after)).toEqual([]);
});
