/**
 * Postgres connections cut under load (`pg_terminate_backend` on every backend of the service's
 * database, three times, a second apart): the process stays up, every job completes, every record
 * applied once, and /readyz answers 200 again.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accountCreatedPayload,
  expectHistoryReplaysToState,
  learnersWithTwoActiveSeats,
  newAccount,
  newProgram,
  uniqueKey,
} from '../support/fixtures.js';
import {
  logLines,
  openWorld,
  type PrivateRedis,
  report,
  type ServiceProcess,
  sleep,
  spawnService,
  startRedis,
  type World,
  waitAllDone,
  waitUntil,
} from './support.js';

describe('Postgres connections cut during load', () => {
  let redis: PrivateRedis;
  let producer: Redis;
  let world: World;
  let service: ServiceProcess;

  beforeAll(async () => {
    redis = await startRedis();
    producer = new Redis(redis.url, { maxRetriesPerRequest: null });
    world = await openWorld({ REDIS_URL: redis.url }, producer);
    service = await spawnService(world.env({ WORKER_CONCURRENCY: '8', WRITE_CHUNK_SIZE: '500' }));
  });
  afterAll(async () => {
    await service?.kill('SIGTERM');
    await world?.close();
    producer?.disconnect();
    await redis?.destroy();
  });

  it('keeps the process up and completes every job', async () => {
    const program = await newProgram(world.t);
    const bulk = Array.from({ length: 20_000 }, () => uniqueKey('cut'));
    const waiting = Array.from({ length: 300 }, () => ({ key: uniqueKey('cut-acct'), account: newAccount() }));
    const setup = await world.t.run('enrollments', 'write-program-enrollments', {
      program_uuid: program.program_uuid,
      action: 'create',
      enrollments: waiting.map((w) => ({ student_key: w.key, status: 'enrolled' })),
    });
    expect(setup.state).toBe('completed');

    const bulkJob = await world.queues.enrollments.add('write-program-enrollments', {
      program_uuid: program.program_uuid,
      action: 'create',
      enrollments: bulk.map((k) => ({ student_key: k, status: 'enrolled' })),
    });
    const events = await world.queues.accounts.addBulk(
      waiting.map((w) => ({
        name: 'account-created',
        data: accountCreatedPayload(
          w.account,
          [{ organization_key: program.organization_key, external_user_key: w.key }],
          randomUUID(),
        ),
      })),
    );
    await waitUntil(
      async () => ((await bulkJob.getState()) === 'active' ? true : undefined),
      60_000,
      'the bulk job to start',
    );

    let cuts = 0;
    for (let i = 0; i < 3; i++) {
      const cut = await world.sql`
        select pg_terminate_backend(pid) from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and application_name = 'program-enrollments'`;
      expect(cut.length).toBeGreaterThan(0);
      cuts += 1;
      await sleep(1_000);
    }

    const bulkDone = await waitAllDone(world.queues.enrollments, [bulkJob.id!], 300_000);
    const eventsDone = await waitAllDone(
      world.queues.accounts,
      events.map((e) => e.id!),
      300_000,
    );
    expect(service.child.exitCode).toBeNull();
    expect(service.child.signalCode).toBeNull();
    expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
    expect(bulkDone).toEqual({ completed: 1, failed: [], missing: [] });
    expect(eventsDone.failed).toEqual([]);
    expect(eventsDone.missing).toEqual([]);

    const result = (await world.queues.enrollments.getJob(bulkJob.id!))!.returnvalue;
    expect(result.counts).toEqual({ enrolled: bulk.length });
    const [{ pes, unlinked, history }] = (await world.sql`
      select (select count(*)::int from program_enrollments where program_uuid = ${program.program_uuid}) as pes,
             (select count(*)::int from program_enrollments where program_uuid = ${program.program_uuid} and user_id is null) as unlinked,
             (select count(*)::int from history where entity = 'program_enrollment' and action = 'created') as history`) as any;
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
