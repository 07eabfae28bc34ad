/**
 * docs/contract.md "Fair share": while bulk writes wait or run, a job of at most 1,000 records on
 * `enrollments` starts within 5 seconds of being added, at any WORKER_CONCURRENCY. Before, every
 * worker slot could hold a bulk job and a 10-record job waited for them all (97–103 s behind 20
 * jobs of 100,000 records).
 */
import { Job } from 'bullmq';
import { expect, it } from 'vitest';
import { LARGE_RESULT_TRIM } from '../../src/queue/large-results.js';
import { completed, useProgram } from '../support/fixtures.js';
import { useTestService, waitFor } from '../support/service.js';

// One slot for small jobs, the fewest there can be; the bulk jobs get the default two of their own.
const t = useTestService({ WORKER_CONCURRENCY: '1' });
const program = useProgram(t);

// No more than the large completed jobs a queue keeps (LARGE_RESULT_TRIM.keepCount), so that each
// one can still be read when the test gets to it.
const BULK_JOBS = LARGE_RESULT_TRIM.keepCount;
const BULK_RECORDS = 10_000;

it('starts a 10-record job within 5 s while bulk jobs fill the queue', async () => {
  const bulk = await t.queues.enrollments.addBulk(
    Array.from({ length: BULK_JOBS }, (_, j) => ({
      name: 'write-program-enrollments',
      data: {
        program_uuid: program.program_uuid,
        action: 'create_or_update',
        enrollments: Array.from({ length: BULK_RECORDS }, (_, i) => ({
          student_key: `bulk-${j}-${i}`,
          status: 'enrolled',
        })),
      },
    })),
  );
  // Bulk work is under way: as many bulk jobs run as they have slots.
  await waitFor(
    async () => ((await t.queues.enrollments.getActiveCount()) >= 2 ? true : undefined),
    60_000,
    'bulk jobs to run',
  );

  const waits: number[] = [];
  for (let n = 0; n < 3; n++) {
    const small = await t.add('enrollments', 'write-program-enrollments', {
      program_uuid: program.program_uuid,
      action: 'create_or_update',
      enrollments: Array.from({ length: 10 }, (_, i) => ({ student_key: `small-${n}-${i}`, status: 'enrolled' })),
    });
    const done = await t.wait(small, 60_000);
    completed(done);
    waits.push(done.job.processedOn! - done.job.timestamp);
  }
  console.log(`wait of a 10-record job behind ${BULK_JOBS} × ${BULK_RECORDS} records: ${waits.join(', ')} ms`);
  // Bulk jobs were still waiting or running when the small ones started.
  expect(await t.queues.enrollments.getJobCountByTypes('waiting', 'active', 'delayed')).toBeGreaterThan(0);
  for (const wait of waits) expect(wait).toBeLessThan(5_000);

  // Deferred bulk jobs lose no attempt and all complete.
  for (const job of bulk) {
    const done = await t.wait(job, 600_000);
    expect(completed(done).counts).toEqual({ enrolled: BULK_RECORDS });
    // One attempt, the one that completed: deferrals are not attempts.
    expect((await Job.fromId(t.queues.enrollments, job.id!))!.attemptsMade).toBe(1);
  }
  // 160,000 records on a shared machine: the waits above are the bound under test, not this.
}, 900_000);
