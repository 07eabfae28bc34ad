/**
 * `program-enrollments/client`: the typed producer against a running service (the built package
 * and a project of its own that uses it are in package.test.ts).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createClient, InvalidPayloadError, JobFailedError, ResultTimeoutError } from '../src/client/index.js';
import { programPayload, uniqueKey } from './support/fixtures.js';
import { useTestService } from './support/service.js';

describe('typed client', () => {
  const t = useTestService();
  const clients: Array<{ close(): Promise<void> }> = [];
  const client = (prefix = t.prefix) => {
    const c = createClient({ connection: { url: inject('redisUrl') }, prefix });
    clients.push(c);
    return c;
  };
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });

  it('adds each job with its schema, waits for its typed result, and answers the first result for a repeated jobId', async () => {
    const c = client();
    const program = programPayload();
    const upserted = await (await c.upsertProgram(program)).result({ timeoutMs: 30_000 });
    expect(upserted).toEqual({ program_uuid: program.program_uuid });

    const key = uniqueKey();
    const jobId = `client-${randomUUID()}`;
    const payload = {
      program_uuid: program.program_uuid,
      action: 'create' as const,
      enrollments: [{ student_key: key, status: 'enrolled' }],
    };
    const first = await c.writeProgramEnrollments(payload, { jobId });
    expect(first).toMatchObject({ id: jobId, queue: 'enrollments', name: 'write-program-enrollments', existed: false });
    expect(await first.result({ timeoutMs: 30_000 })).toEqual({
      code: 200,
      results: { [key]: 'enrolled' },
      counts: { enrolled: 1 },
    });
    // A second `create` would be a conflict; the same jobId applies nothing and answers as the first.
    const again = await c.writeProgramEnrollments(payload, { jobId });
    expect(again.existed).toBe(true);
    expect((await again.result()).results).toEqual({ [key]: 'enrolled' });

    const account = await c.accountCreated({ event_id: randomUUID(), user_id: 4242, username: 'u', identities: [] });
    expect(account.queue).toBe('accounts');
    expect(await account.result()).toEqual({ linked: [] });
    expect(await c.resultOf('write-program-enrollments', jobId)).toEqual(await first.result());
  });

  it('refuses an invalid payload before adding anything, naming the field as the worker would', async () => {
    const c = client();
    const before = await t.queues.enrollments.getJobCountByTypes('waiting', 'active', 'completed', 'failed', 'delayed');
    await expect(
      c.writeProgramEnrollments({
        program_uuid: 'not-a-uuid',
        action: 'create',
        enrollments: [{ student_key: '  ', status: 'enrolled' }],
      }),
    ).rejects.toThrow(InvalidPayloadError);
    await expect(c.retireLearner({ user_id: 0 })).rejects.toThrow(/^invalid payload: user_id: /);
    const after = await t.queues.enrollments.getJobCountByTypes('waiting', 'active', 'completed', 'failed', 'delayed');
    expect(after).toBe(before);
  });

  it('throws the failed reason of a job that failed', async () => {
    const c = client();
    const uuid = randomUUID();
    const job = await c.writeProgramEnrollments({ program_uuid: uuid, action: 'create', enrollments: [] });
    const err = await job.result({ timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect((err as JobFailedError).reason).toMatch(new RegExp(`^unknown program ${uuid}`));
  });

  it('gives up waiting after the timeout, and counts the workers of a queue', async () => {
    expect(await client().workerCount('enrollments')).toBeGreaterThan(0);
    // A prefix no service consumes: the job waits for ever, the client does not.
    const nobody = client(`${t.prefix}-nobody`);
    expect(await nobody.workerCount('enrollments')).toBe(0);
    const job = await nobody.retireLearner({ user_id: 7 });
    const started = Date.now();
    await expect(job.result({ timeoutMs: 300, everyMs: 50 })).rejects.toThrow(ResultTimeoutError);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
