/**
 * CONTRACT "A job of more than 1,000 records reports progress at least every 1,000 records
 * as job.progress = { done, total }, counting records". Duplicated records are counted as done
 * before the first chunk but never reported, so the first report can jump by more than 1,000.
 */
import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestService, type TestService } from '../support/service.js';
import { newProgram, uniqueKey, type ProgramPayload } from '../support/fixtures.js';

let t: TestService;
let P: ProgramPayload;

beforeAll(async () => {
  t = await startTestService();
  P = await newProgram(t);
});

afterAll(async () => {
  await t?.stop();
});

describe('progress of a write with duplicates', () => {
  it('never advances by more than 1,000 records between reports', async () => {
    const connection = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    const events = new QueueEvents('enrollments', { connection, prefix: t.prefix });
    await events.waitUntilReady();
    const reports: Array<{ jobId: string; data: unknown }> = [];
    events.on('progress', ({ jobId, data }) => reports.push({ jobId, data }));
    try {
      const dup = Array.from({ length: 600 }, () => uniqueKey('dup'));
      const enrollments = [
        ...dup.flatMap((k) => [{ student_key: k, status: 'enrolled' }, { student_key: k.toUpperCase(), status: 'enrolled' }]),
        ...Array.from({ length: 1_100 }, () => ({ student_key: uniqueKey('u'), status: 'enrolled' })),
      ];
      const done = await t.run('enrollments', 'write-program-enrollments', { program_uuid: P.program_uuid, action: 'create', enrollments });
      expect(done.state, done.failedReason).toBe('completed');
      await new Promise((r) => setTimeout(r, 200));
      const progress = reports.filter((r) => r.jobId === done.job.id).map((r) => r.data as { done: number; total: number });
      expect(progress.at(-1)).toEqual({ done: 2_300, total: 2_300 });
      let last = 0;
      for (const p of progress) {
        expect(p.done - last, `progress reports ${JSON.stringify(progress)}`).toBeLessThanOrEqual(1_000);
        last = p.done;
      }
    } finally {
      await events.close();
      await connection.quit();
    }
  });
});
