/**
 * A three-master Redis Cluster on loopback, two service processes, a mixed workload, and the
 * master that holds the queues restarted mid-run: every job completes, nothing lost or applied
 * twice.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accountCreatedPayload,
  COURSE,
  expectHistoryReplaysToState,
  learnersWithTwoActiveSeats,
  newAccount,
  newProgram,
  uniqueKey,
} from '../support/fixtures.js';
import {
  openWorld,
  report,
  type ServiceProcess,
  sleep,
  spawnServices,
  startRedisCluster,
  type World,
  waitAllDone,
  waitUntil,
} from './support.js';

describe('Redis Cluster with three masters', () => {
  let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
  let producer: Cluster;
  let world: World;
  const processes: ServiceProcess[] = [];
  const tag = `fc${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    producer = new Cluster(
      cluster.masters.map((m) => ({ host: '127.0.0.1', port: m.port })),
      { redisOptions: { maxRetriesPerRequest: null } },
    );
    producer.on('error', () => {});
    world = await openWorld({ REDIS_CLUSTER_NODES: cluster.seeds, QUEUE_PREFIX: `{${tag}}` }, producer);
    await spawnServices(2, world.env({ WORKER_CONCURRENCY: '4' }), processes);
  });
  afterAll(async () => {
    for (const p of processes) await p.kill('SIGTERM');
    await world?.close();
    producer?.disconnect();
    await cluster?.destroy();
  });

  it('completes every job of a mixed workload when the queues master restarts', async () => {
    const program = await newProgram(world.t);
    const waiting = Array.from({ length: 200 }, () => ({ key: uniqueKey('cl-acct'), account: newAccount() }));
    const bulk = Array.from({ length: 10_000 }, () => uniqueKey('cl-bulk'));
    expect(
      (
        await world.t.run('enrollments', 'write-program-enrollments', {
          program_uuid: program.program_uuid,
          action: 'create',
          enrollments: waiting.map((w) => ({ student_key: w.key, status: 'enrolled' })),
        })
      ).state,
    ).toBe('completed');
    const ids = { enrollments: [] as string[], accounts: [] as string[] };
    ids.enrollments.push(
      (
        await world.queues.enrollments.add('write-program-enrollments', {
          program_uuid: program.program_uuid,
          action: 'create',
          enrollments: bulk.map((k) => ({ student_key: k, status: 'enrolled' })),
        })
      ).id!,
      (
        await world.queues.enrollments.add('write-program-course-enrollments', {
          program_uuid: program.program_uuid,
          course_key: COURSE,
          action: 'create',
          enrollments: waiting.map((w) => ({ student_key: w.key, status: 'active' })),
        })
      ).id!,
    );
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
    ids.accounts.push(...events.map((e) => e.id!));
    await waitUntil(
      async () => (await world.queues.enrollments.getActiveCount()) > 0 || undefined,
      60_000,
      'a job running',
    );

    // The master that serves the queues' hash slot.
    const slot = Number(
      spawnSync('redis-cli', ['-p', String(cluster.masters[0]!.port), 'cluster', 'keyslot', tag], {
        encoding: 'utf8',
      }).stdout.trim(),
    );
    const nodes = spawnSync('redis-cli', ['-p', String(cluster.masters[0]!.port), 'cluster', 'nodes'], {
      encoding: 'utf8',
    }).stdout;
    const ownerPort = slotOwner(nodes, slot);
    const owner = cluster.masters.find((m) => m.port === ownerPort)!;
    expect(owner).toBeDefined();
    await owner.stop();
    await sleep(3_000);
    await owner.start();

    const enrollments = await waitAllDone(world.queues.enrollments, ids.enrollments, 400_000);
    const accounts = await waitAllDone(world.queues.accounts, ids.accounts, 400_000);
    expect(enrollments.failed).toEqual([]);
    expect(accounts.failed).toEqual([]);
    const lost = enrollments.missing.length + accounts.missing.length;

    const [{ pes, unlinked, created, links }] = (await world.sql`
      select (select count(*)::int from program_enrollments where program_uuid = ${program.program_uuid}) as pes,
             (select count(*)::int from program_enrollments where program_uuid = ${program.program_uuid} and user_id is null) as unlinked,
             (select count(*)::int from history where entity = 'program_enrollment' and action = 'created') as created,
             (select count(*)::int from history where entity = 'program_enrollment' and action = 'changed' and changes ? 'user_id') as links`) as any;
    const violations = await learnersWithTwoActiveSeats(world.t);
    await expectHistoryReplaysToState(world.t);
    report({
      scenario: 'redis cluster, queues master restarted',
      redis_restarts: 1,
      jobs: ids.enrollments.length + ids.accounts.length + 2,
      lost,
      duplicated: created - pes + (links - waiting.length),
      violations,
    });
    expect(lost).toBe(0);
    expect({ pes, unlinked, created, links }).toEqual({
      pes: bulk.length + waiting.length,
      unlinked: bulk.length,
      created: bulk.length + waiting.length,
      links: waiting.length,
    });
    expect(violations).toBe(0);
  });
});

/** The port of the master serving `slot`, from `CLUSTER NODES` (`id ip:port@bus flags … 0-5460 …`). */
function slotOwner(nodes: string, slot: number): number | undefined {
  for (const line of nodes.trim().split('\n')) {
    const fields = line.split(' ');
    const port = Number(fields[1]?.split('@')[0]?.split(':')[1]);
    for (const range of fields.slice(8)) {
      const [from, to = from] = range.split('-').map(Number);
      if (from !== undefined && slot >= from && slot <= to!) return port;
    }
  }
  return undefined;
}
