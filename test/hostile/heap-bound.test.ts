/**
 * The service's V8 heap is bounded (src/config.ts serviceHeapMiB), so that a process with many
 * bulk jobs queued collects garbage instead of growing: 20 × 100,000 records queued peaked at
 * 700–1,200 MiB RSS unbounded (README "Heavy use"). `npm start` passes the bound to the service
 * unless NODE_OPTIONS names one; the Docker image sets it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { serviceHeapMiB, withServiceHeap } from '../../src/config.js';

it('allows 128 MiB plus 64 MiB per bulk slot, 256 MiB at the default BULK_CONCURRENCY', () => {
  expect(serviceHeapMiB(undefined)).toBe(256);
  expect(serviceHeapMiB('2')).toBe(256);
  expect(serviceHeapMiB('4')).toBe(384);
  expect(serviceHeapMiB('nonsense')).toBe(256);
});

it("adds the bound and the young generation's size to NODE_OPTIONS, and keeps an operator's own", () => {
  expect(withServiceHeap(undefined, '2')).toBe('--max-old-space-size=256 --max-semi-space-size=16');
  expect(withServiceHeap('--enable-source-maps', '3')).toBe(
    '--enable-source-maps --max-old-space-size=320 --max-semi-space-size=16',
  );
  expect(withServiceHeap('--max-old-space-size=1024', '2')).toBe('--max-old-space-size=1024 --max-semi-space-size=16');
  expect(withServiceHeap('--max-semi-space-size=4', '2')).toBe('--max-semi-space-size=4 --max-old-space-size=256');
});

it('is set in the Docker image for the default BULK_CONCURRENCY', () => {
  const dockerfile = readFileSync(path.resolve(import.meta.dirname, '../../Dockerfile'), 'utf8');
  expect(dockerfile).toContain(`ENV NODE_OPTIONS="${withServiceHeap(undefined, undefined)}"\n`);
});
