/**
 * Uploads are parsed on long-lived worker threads (src/http/upload-thread.ts): one thread serves
 * upload after upload instead of a thread (a V8 isolate, the TypeScript loader, a Redis
 * connection) started for each. The HTTP side of uploads is in test/uploads.test.ts; `/healthz`
 * during a 5 MiB upload in http-bad-requests.test.ts; the compiled entry in package.test.ts.
 */
import { afterAll, expect, inject, it } from 'vitest';
import { threadEntry, UploadParserPool } from '../../src/http/upload-thread.js';
import { useTestService, waitFor } from '../support/service.js';

const t = useTestService();
const pool = new UploadParserPool(1, 600_000);
afterAll(() => pool.close());

const target = (jobId: string) => ({
  redis: { url: inject('redisUrl'), clusterNodes: [] },
  prefix: t.prefix,
  name: 'write-program-enrollments',
  jobId,
  requestedBy: 'api:test',
});
const csv = (n: number) =>
  Buffer.from(`student_key,status\n${Array.from({ length: n }, (_, i) => `k${i},enrolled`).join('\n')}\n`);
const PROGRAM = '00000000-1111-2222-3333-444444444444';

it('serves every upload on the same thread, one at a time, in order', async () => {
  const first = await pool.addUploadJob('program', PROGRAM, csv(3), target('pool-1'));
  expect(first).toEqual({ ok: true, records: 3 });
  const [thread] = pool.threadIds;
  expect(pool.threadIds).toHaveLength(1);

  // Five at once: they queue for the one thread, each answered with its own outcome.
  const answers = await Promise.all([
    pool.addUploadJob('program', PROGRAM, csv(1), target('pool-2')),
    pool.addUploadJob('program', PROGRAM, Buffer.from('student_key\nx\n'), target('pool-refused')),
    pool.addUploadJob('program', PROGRAM, Buffer.from([0xff, 0xfe, 0x0a]), target('pool-not-utf8')),
    pool.addUploadJob('course', PROGRAM, Buffer.from('student_key,course_id,status\nk,C,active\n'), target('pool-3')),
    pool.addUploadJob('program', PROGRAM, csv(2_000), target('pool-4')),
  ]);
  expect(answers).toEqual([
    { ok: true, records: 1 },
    { ok: false, refusal: 'invalid', message: 'CSV is missing headers [status]' },
    { ok: false, refusal: 'invalid', message: 'CSV is not valid UTF-8' },
    { ok: true, records: 1 },
    { ok: true, records: 2_000 },
  ]);
  expect(pool.threadIds).toEqual([thread]);

  // The accepted ones are queued under the ids given, refused ones not at all.
  const ids = ['pool-1', 'pool-2', 'pool-3', 'pool-4', 'pool-refused', 'pool-not-utf8'];
  const states = await Promise.all(ids.map((id) => t.queues.enrollments.getJobState(id)));
  expect(states.slice(0, 4)).not.toContain('unknown');
  expect(states.slice(4)).toEqual(['unknown', 'unknown']);
});

it('replaces a thread that died, failing only the upload it held', async () => {
  const [before] = pool.threadIds;
  // A thread that stops (killed, out of memory) fails the upload it held, not the pool.
  const held = pool.addUploadJob('program', PROGRAM, csv(50_000), target('pool-killed'));
  const worker = (pool as unknown as { threads: { worker: { terminate(): Promise<number> } }[] }).threads[0]!;
  await worker.worker.terminate();
  await expect(held).rejects.toThrow(/upload parser stopped/);
  expect(await pool.addUploadJob('program', PROGRAM, csv(1), target('pool-after'))).toEqual({ ok: true, records: 1 });
  expect(pool.threadIds).toHaveLength(1);
  expect(pool.threadIds[0]).not.toBe(before);
});

it('stops a thread that stays idle, and starts one again for the next upload', async () => {
  const brief = new UploadParserPool(1, 300);
  try {
    expect(await brief.addUploadJob('program', PROGRAM, csv(1), target('pool-idle-1'))).toEqual({
      ok: true,
      records: 1,
    });
    expect(brief.threadIds).toHaveLength(1);
    await waitFor(async () => (brief.threadIds.length === 0 ? true : undefined), 10_000, 'the idle thread to stop', 50);
    expect(await brief.addUploadJob('program', PROGRAM, csv(1), target('pool-idle-2'))).toEqual({
      ok: true,
      records: 1,
    });
  } finally {
    await brief.close();
  }
});

it('stops the thread right after a large upload, so that its heap does not stay', async () => {
  const large = csv(100_000);
  expect(large.byteLength).toBeGreaterThan(1024 * 1024);
  const fresh = new UploadParserPool(1, 600_000);
  try {
    expect(await fresh.addUploadJob('program', PROGRAM, large, target('pool-large'))).toEqual({
      ok: true,
      records: 100_000,
    });
    // Retired as it answered, not after the idle time: no thread is left holding the file's heap.
    await waitFor(async () => (fresh.threadIds.length === 0 ? true : undefined), 10_000, 'the thread to stop', 50);
    expect(await fresh.addUploadJob('program', PROGRAM, csv(1), target('pool-after-large'))).toEqual({
      ok: true,
      records: 1,
    });
    expect(fresh.threadIds).toHaveLength(1);
  } finally {
    await fresh.close();
  }
});

it('starts from the compiled entry when built, and through tsx from the sources', () => {
  expect(threadEntry('file:///srv/app/dist/http/upload-thread.js').pathname).toBe(
    '/srv/app/dist/http/upload-thread-entry.js',
  );
  expect(threadEntry('file:///srv/app/src/http/upload-thread.ts').pathname).toBe(
    '/srv/app/src/http/upload-thread-boot.mjs',
  );
});
