/**
 * CONTRACT "A job of more than 1,000 records reports progress at least every 1,000 records
 * as job.progress = { done, total }, counting records". Duplicated records are counted as done
 * before the first chunk but never reported, so the first report can jump by more than 1,000.
 */
import { describe, expect, it } from 'vitest';
import { uniqueKey, useProgram, watchProgress } from '../support/fixtures.js';
import { useTestService } from '../support/service.js';

const t = useTestService();
const P = useProgram(t);

describe('progress of a write with duplicates', () => {
  it('never advances by more than 1,000 records between reports', async () => {
    const reports = await watchProgress(t);
    try {
      const dup = Array.from({ length: 600 }, () => uniqueKey('dup'));
      const enrollments = [
        ...dup.flatMap((k) => [
          { student_key: k, status: 'enrolled' },
          { student_key: k.toUpperCase(), status: 'enrolled' },
        ]),
        ...Array.from({ length: 1_100 }, () => ({ student_key: uniqueKey('u'), status: 'enrolled' })),
      ];
      const done = await t.run('enrollments', 'write-program-enrollments', {
        program_uuid: P.program_uuid,
        action: 'create',
        enrollments,
      });
      expect(done.state, done.failedReason).toBe('completed');
      await reports.ended(done.job.id!);
      const progress = reports.of(done.job.id!);
      expect(progress.at(-1)).toEqual({ done: 2_300, total: 2_300 });
      let last = 0;
      for (const p of progress) {
        expect(p.done - last, `progress reports ${JSON.stringify(progress)}`).toBeLessThanOrEqual(1_000);
        last = p.done;
      }
    } finally {
      await reports.close();
    }
  });
});
