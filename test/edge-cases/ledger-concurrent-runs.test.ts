/**
 * two runs of one job at once (BullMQ stalled-job recovery while the first run's process
 * was paused). CONTRACT "Delivery, retries and idempotency": "nothing is applied twice and the job
 * returns the same result as its first complete run".
 *
 * Run B is the handler invoked directly with the job's ledger key; its learner-course lock
 * acquisition (the step between loading the chunk ledger and claiming the chunk) is paused until
 * run A, through the real queue, has finished. That is what a process paused (GC, VM, CPU) between
 * those two steps does.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { connectDatabase, type Database } from '../../src/db/client.js';
import type { JobContext } from '../../src/jobs/context.js';
import { handlers } from '../../src/jobs/index.js';
import type { LearnerCourseLocks } from '../../src/lock/learner-course-locks.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { announceAccount, enroll, peOf, uniqueKey, useProgram } from '../support/fixtures.js';
import { useTestService } from '../support/service.js';

const t = useTestService();
const P = useProgram(t);
let db: Database;

beforeAll(async () => {
  db = connectDatabase(t.databaseUrl, { max: 4 });
});

afterAll(async () => {
  await db?.close();
});

/** A JobContext for a second run of the job `enrollments/<jobId>`, whose lock step waits for `gate`. */
function pausedRun(jobId: string, gate: Promise<void>, reached: () => void): JobContext {
  const locks = {
    enabled: false,
    keyFor: () => '',
    async acquire() {
      reached();
      await gate;
      return { keys: [], release: async () => {} };
    },
  } as unknown as LearnerCourseLocks;
  return {
    config: loadConfig({ DATABASE_URL: t.databaseUrl, REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'silent' }),
    database: db,
    locks,
    metrics: createMetrics(),
    log: createLogger('silent'),
    jobId: jobId,
    queue: 'enrollments',
    key: `enrollments/${jobId}`,
    progress: async () => {},
    signal: new AbortController().signal,
  };
}

function gate() {
  let open!: () => void;
  let reached!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const wasReached = new Promise<void>((r) => (reached = r));
  return { opened, open, reached, wasReached };
}

describe('a job run twice at once', () => {
  it('write-program-enrollments: the second run neither re-applies a chunk nor changes the stored result', async () => {
    const keys = [uniqueKey(), uniqueKey()];
    const jobId = `edge-${randomUUID()}`;
    const payload = {
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: keys.map((student_key) => ({ student_key, status: 'pending' })),
    };

    const g = gate();
    const runB = handlers['write-program-enrollments']!.run(
      handlers['write-program-enrollments']!.schema.parse(payload),
      pausedRun(jobId, g.opened, g.reached),
    );
    await g.wasReached; // B has looked for a result and for applied chunks: none yet.

    const a = await enroll(t, P.program_uuid, payload.enrollments, { action: 'create', job: { jobId } });
    expect(a.state, a.failedReason).toBe('completed');
    expect(a.result.results).toEqual({ [keys[0]!]: 'pending', [keys[1]!]: 'pending' });

    g.open();
    const b = (await runB) as { results: Record<string, string> };
    const [stored] = await t.sql`select result from job_results where key = ${`enrollments/${jobId}`}`;

    // The remembered result is the first one, and every run returns it.
    expect((stored!.result as { results: unknown }).results).toEqual(a.result.results);
    expect(b.results).toEqual(a.result.results);
  });

  it('link-program-enrollments: the second run neither re-applies a link nor changes the stored result', async () => {
    const key = uniqueKey();
    await enroll(t, P.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    const account = await announceAccount(t, []);
    const jobId = `edge-${randomUUID()}`;
    const payload = { program_uuid: P.program_uuid, links: [{ student_key: key, username: account.username }] };

    const g = gate();
    const runB = handlers['link-program-enrollments']!.run(
      handlers['link-program-enrollments']!.schema.parse(payload),
      pausedRun(jobId, g.opened, g.reached),
    );
    await g.wasReached;

    const a = await t.run('enrollments', 'link-program-enrollments', payload, { jobId });
    expect(a.state, a.failedReason).toBe('completed');
    expect(a.result).toEqual({ errors: {} });
    expect((await peOf(t, P.program_uuid, key))!.user_id).toBe(account.user_id);

    g.open();
    const b = await runB;
    const [stored] = await t.sql`select result from job_results where key = ${`enrollments/${jobId}`}`;
    expect(stored!.result).toEqual({ errors: {} });
    expect(b).toEqual({ errors: {} });
  });
});
