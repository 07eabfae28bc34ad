/**
 * Completed bulk jobs leave Redis soon after they finish (src/queue/large-results.ts): one
 * 100,000-record write held 12.6 MB in Redis for 24 hours, up to 5,000 of them per queue, under
 * `noeviction`. Their results stay readable as docs/contract.md promises: in full while the job is
 * kept, then from Postgres (an upload's job status and result.csv, and a re-submission under the
 * same jobId, which applies nothing and returns the first result). Small jobs stay as before.
 */
import { Redis } from 'ioredis';
import { afterAll, expect, inject, it } from 'vitest';
import { completed, useProgram } from '../support/fixtures.js';
import { useTestService, waitFor } from '../support/service.js';

const t = useTestService({ KEEP_LARGE_COMPLETED_SECONDS: '8' });
const program = useProgram(t);
const RECORDS = 5_000;
const redis = new Redis(inject('redisUrl'));
afterAll(() => redis.quit());

const records = (label: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ student_key: `${label}-${i}`, status: 'enrolled' }));

it('removes large completed jobs from Redis after a while; their results stay readable', async () => {
  const write = {
    program_uuid: program.program_uuid,
    action: 'create_or_update',
    enrollments: records('bulk', RECORDS),
  };
  const bulk = await t.add('enrollments', 'write-program-enrollments', write, { jobId: 'large-result-1' });
  const small = await t.add('enrollments', 'write-program-enrollments', {
    ...write,
    enrollments: records('small', 10),
  });
  const form = new FormData();
  const csv = `student_key,status\n${records('upload', RECORDS)
    .map((r) => `${r.student_key},enrolled`)
    .join('\n')}\n`;
  form.append('file', new Blob([csv], { type: 'text/csv' }), 'upload.csv');
  const upload = await t.api(`/api/v1/programs/${program.program_uuid}/enrollments/upload`, {
    method: 'POST',
    body: form,
  });
  expect(upload.status).toBe(202);
  const { job_id: uploadId } = (await upload.json()) as { job_id: string };

  // While it is kept, the producer reads the full result from BullMQ, as before.
  const first = completed(await t.wait(bulk, 120_000));
  expect(first.code).toBe(200);
  expect(Object.keys(first.results)).toHaveLength(RECORDS);
  completed(await t.wait(small, 120_000));
  const hash = `${t.prefix}:enrollments:${bulk.id}`;
  expect(Number(await redis.call('MEMORY', 'USAGE', hash, 'SAMPLES', '0'))).toBeGreaterThan(128 * 1024);

  // Then it leaves Redis, the upload's job too; the small job stays.
  await waitFor(
    async () =>
      (await t.queues.enrollments.getJobState(bulk.id!)) === 'unknown' &&
      (await t.queues.enrollments.getJobState(uploadId)) === 'unknown'
        ? true
        : undefined,
    90_000,
    'the large completed jobs to leave Redis',
    500,
  );
  expect(await redis.exists(hash)).toBe(0);
  // Its result's copy in the event stream went with it; the small job's is still there.
  const completions = (await redis.xrange(`${t.prefix}:enrollments:events`, '-', '+'))
    .filter(([, fields]) => fields[1] === 'completed')
    .map(([, fields]) => fields[fields.indexOf('jobId') + 1]);
  expect(completions).toContain(small.id);
  expect(completions).not.toContain(bulk.id);
  expect(completions).not.toContain(uploadId);
  expect(await t.queues.enrollments.getJobState(small.id!)).toBe('completed');

  // The upload's status and result CSV answer from Postgres.
  const status = (await (await t.api(`/api/v1/jobs/${uploadId}`)).json()) as { state: string; text: string };
  expect(status).toMatchObject({ state: 'Succeeded', text: '200' });
  const resultCsv = await t.api(`/api/v1/jobs/${uploadId}/result.csv`);
  expect(resultCsv.status).toBe(200);
  expect((await resultCsv.text()).split('\r\n').filter(Boolean)).toHaveLength(RECORDS + 1);

  // Re-submitted under its jobId, the write applies nothing and answers its first result in full.
  const history = async () =>
    Number((await t.sql`select count(*)::int as n from history where job_id = ${bulk.id!}`)[0]!.n);
  const rows = await history();
  const again = await t.add('enrollments', 'write-program-enrollments', write, { jobId: 'large-result-1' });
  expect(completed(await t.wait(again, 120_000))).toEqual(first);
  expect(await history()).toBe(rows);
});
