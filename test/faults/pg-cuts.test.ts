/**
 * Postgres connections cut under load (`pg_terminate_backend` on every backend of the service's
 * database, three times, each as soon as the service has reconnected and done more work): the
 * process stays up, every job completes, every record
 * applied once, and /readyz answers 200 again.
 */
import { describe, expect, it } from 'vitest';
import { expectHistoryReplaysToState, learnersWithTwoActiveSeats, newProgram, uniqueKey } from '../support/fixtures.js';
import {
  addAccountEvents,
  addBulkWrite,
  enrollWaiting,
  httpGet,
  logLines,
  programCounts,
  report,
  type ServiceProcess,
  useScene,
  waitAllDone,
  waitUntil,
} from './support.js';

describe('Postgres connections cut during load', () => {
  const scene = useScene({ services: 1, env: { WORKER_CONCURRENCY: '8', WRITE_CHUNK_SIZE: '500' } });

  it('keeps the process up and completes every job', async () => {
    const { world } = scene;
    const service = scene.processes[0]!;
    const program = await newProgram(world.t);
    const bulk = Array.from({ length: 20_000 }, () => uniqueKey('cut'));
    const waiting = await enrollWaiting(world, program, 300, 'cut-acct');
    const bulkJob = await addBulkWrite(world, program, bulk);
    const events = await addAccountEvents(world, program, waiting);
    await waitUntil(
      async () => ((await bulkJob.getState()) === 'active' ? true : undefined),
      60_000,
      'the bulk job to start',
    );

    // Work done so far: records of the bulk job applied plus account events completed. The load
    // (40 chunks of 500 records, 300 events) outlasts the three cuts even on a fast machine: each
    // waits only for the retries of the last one to make progress.
    const progress = async () =>
      (((await world.queues.enrollments.getJob(bulkJob.id!))?.progress as { done?: number } | undefined)?.done ?? 0) +
      (await world.queues.accounts.getCompletedCount());
    // Each cut terminates live backends of the service (waiting until its pool holds some: it
    // reconnects on demand), and the next cut comes once the service has recovered from the last
    // one and done more work, so that every cut lands on a process under load.
    let cuts = 0;
    for (let i = 0; i < 3; i++) {
      const cut = await waitUntil(
        async () => {
          const terminated = await world.sql`
            select pg_terminate_backend(pid) from pg_stat_activity
            where datname = current_database() and pid <> pg_backend_pid()
              and application_name like 'program-enrollments %'`;
          return terminated.length > 0 ? terminated : undefined;
        },
        60_000,
        'the service to hold Postgres connections',
        50,
      );
      expect(cut.length).toBeGreaterThan(0);
      cuts += 1;
      const before = await progress();
      if (i < 2) await waitUntil(async () => (await progress()) > before, 120_000, 'work done after the cut');
    }

    const bulkDone = await waitAllDone(world.queues.enrollments, [bulkJob.id!], 300_000);
    const eventsDone = await waitAllDone(world.queues.accounts, events, 300_000);
    expect(service.child.exitCode).toBeNull();
    expect(service.child.signalCode).toBeNull();
    expect((await httpGet(`${service.url}/readyz`)).status).toBe(200);
    expect(bulkDone).toEqual({ completed: 1, failed: [], missing: [] });
    expect(eventsDone.failed).toEqual([]);
    expect(eventsDone.missing).toEqual([]);

    const result = (await world.queues.enrollments.getJob(bulkJob.id!))!.returnvalue;
    expect(result.counts).toEqual({ enrolled: bulk.length });
    const { pes, unlinked, created: history } = await programCounts(world, program.program_uuid);
    expect({ pes, unlinked }).toEqual({ pes: bulk.length + waiting.length, unlinked: bulk.length });
    const violations = await learnersWithTwoActiveSeats(world.t);
    await expectHistoryReplaysToState(world.t);
    report({
      scenario: 'pg backends terminated during load',
      pg_cuts: cuts,
      jobs: events.length + 2,
      lost: 0,
      duplicated: history - pes,
      violations,
    });
    expect(history).toBe(pes);
    // The driver's exception on cut connections is gone (patches/postgres+3.4.9.patch).
    expect(fatalLines(service)).toEqual([]);
  });
});

function fatalLines(s: ServiceProcess): string[] {
  return logLines(s, 0)
    .filter((l) => l.level >= 60 || /uncaught/i.test(l.msg))
    .map((l) => l.msg);
}
