/**
 * A three-master Redis Cluster on loopback, two service processes, a mixed workload, and the
 * master that holds the queues restarted mid-run: every job completes, nothing lost or applied
 * twice.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  COURSE,
  expectHistoryReplaysToState,
  learnersWithTwoActiveSeats,
  newProgram,
  uniqueKey,
} from '../support/fixtures.js';
import {
  addAccountEvents,
  addBulkWrite,
  clusterInfo,
  enrollWaiting,
  failedReasons,
  programCounts,
  report,
  useScene,
  waitAllDone,
  waitUntil,
} from './support.js';

describe('Redis Cluster with three masters', () => {
  const scene = useScene({ cluster: true, services: 2, env: { WORKER_CONCURRENCY: '4' } });

  it('completes every job of a mixed workload when the queues master restarts', async () => {
    const { world, cluster } = scene;
    const program = await newProgram(world.t);
    const waiting = await enrollWaiting(world, program, 200, 'cl-acct');
    const bulk = Array.from({ length: 10_000 }, () => uniqueKey('cl-bulk'));
    const ids = { enrollments: [] as string[], accounts: [] as string[] };
    ids.enrollments.push(
      (await addBulkWrite(world, program, bulk)).id!,
      (
        await world.queues.enrollments.add('write-program-course-enrollments', {
          program_uuid: program.program_uuid,
          course_key: COURSE,
          action: 'create',
          enrollments: waiting.map((w) => ({ student_key: w.key, status: 'active' })),
        })
      ).id!,
    );
    ids.accounts.push(...(await addAccountEvents(world, program, waiting)));
    await waitUntil(
      async () => (await world.queues.enrollments.getActiveCount()) > 0 || undefined,
      60_000,
      'a job running',
    );

    // The master that serves the queues' hash slot (the prefix's tag).
    const slot = Number(
      spawnSync('redis-cli', ['-p', String(cluster.masters[0]!.port), 'cluster', 'keyslot', world.prefix], {
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
    // Down until the other masters have noticed (cluster-node-timeout) and the cluster says it is
    // down: the service meets CLUSTERDOWN and redirections, not only a closed connection.
    const others = cluster.masters.filter((m) => m !== owner);
    await waitUntil(
      async () => others.every((m) => clusterInfo(m.port).includes('cluster_state:fail')),
      30_000,
      'the other masters to see the cluster down',
    );
    await owner.start();

    const enrollments = await waitAllDone(world.queues.enrollments, ids.enrollments, 400_000);
    const accounts = await waitAllDone(world.queues.accounts, ids.accounts, 400_000);
    expect(await failedReasons(world.queues.enrollments, enrollments.failed)).toEqual([]);
    expect(await failedReasons(world.queues.accounts, accounts.failed)).toEqual([]);
    const lost = enrollments.missing.length + accounts.missing.length;

    const { pes, unlinked, created, links } = await programCounts(world, program.program_uuid);
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
