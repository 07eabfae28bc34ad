/**
 * Outbound events lose nothing (contract.md "Outbound events", Delivery): the event bus's Redis
 * stopped for 30 s during a 10,000-learner realizing course write, and a service killed with
 * SIGKILL after its write committed and while it published. Afterwards every outbox event is in the
 * stream at least once, always under its own `id`, nothing else is, and the events of each account
 * and course come in the order the changes committed (the history of the CE, written in the same
 * transactions, is the witness). The event bus is a private redis-server the test stops and starts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Service, startService } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { freePort } from '../src/infra/embedded.js';
import { entriesAdded, outboxRows, streamEntries, streamsOf, untilAllPublished } from './support/event-bus.js';
import { newPrefix, queuesOn, spawnServiceProcess } from './support/extra-services.js';
import { completed, newCourseKey, newOrg, newProgram, type ProgramPayload, uniqueKey } from './support/fixtures.js';
import { serviceEnv, useTestService, waitFor, waitJob } from './support/service.js';

const LEARNERS = 10_000;

/** The event bus: a redis-server with an append-only file, so a stop and a start keep the streams. */
class EventBusRedis {
  port = 0;
  private dir = mkdtempSync(path.join(os.tmpdir(), 'event-bus-redis-'));
  private child: ChildProcess | undefined;
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    this.port ||= await freePort();
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes'],
      { cwd: this.dir, stdio: 'ignore' },
    );
    await waitFor(
      () =>
        new Promise<true | undefined>((resolve) => {
          const s = net.connect(this.port, '127.0.0.1', () => {
            s.end();
            resolve(true);
          });
          s.on('error', () => resolve(undefined));
        }),
      10_000,
      'the event bus redis-server to listen',
      50,
    );
  }
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  async remove(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const bus = new EventBusRedis();
// Jobs run on services of the test's own; this one only loads the catalog and the learners.
const t = useTestService({ EVENT_BUS: 'off' });
let reader: Redis;
let program: ProgramPayload;
let keys: string[];

beforeAll(async () => {
  await bus.start();
  reader = new Redis(bus.url, { maxRetriesPerRequest: null });
  reader.on('error', () => {}); // the event bus is stopped on purpose
  const org = newOrg();
  program = await newProgram(t, {
    org,
    courses: [newCourseKey(org, 'A'), newCourseKey(org, 'B'), newCourseKey(org, 'C')],
  });
  // 10,000 learners whose accounts the service knows, each with a realized PE.
  keys = Array.from({ length: LEARNERS }, () => uniqueKey('bus'));
  const users = keys.map((_, i) => 50_000_000 + i);
  await t.sql`
    insert into accounts (user_id, username, email)
    select u, 'user-' || u, 'user-' || u || '@example.org' from unnest(${users}::bigint[]) as u`;
  await t.sql`
    insert into learners (organization_key, student_key, user_id)
    select ${org}, k, u from unnest(${keys}::text[], ${users}::bigint[]) as v(k, u)`;
  const done = await t.run('enrollments', 'write-program-enrollments', {
    program_uuid: program.program_uuid,
    action: 'create',
    enrollments: keys.map((student_key) => ({ student_key, status: 'enrolled' })),
  });
  expect(completed(done).counts).toEqual({ enrolled: LEARNERS });
}, 180_000);

afterAll(async () => {
  reader?.disconnect();
  await bus.remove();
});

/** A service as `npm start` runs it, publishing to the test's event bus, with its log lines kept. */
async function startPublisher(prefix: string): Promise<{ service: Service; lines: Array<{ msg: string }> }> {
  const lines: Array<{ msg: string }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const config = loadConfig({
    ...serviceEnv(t.databaseUrl, prefix),
    EVENT_BUS_TOPIC_PREFIX: t.prefix,
    EVENT_BUS_REDIS_URL: bus.url,
    WORKER_CONCURRENCY: '2',
  });
  return { service: await startService(config, { logger }), lines };
}

function courseWrite(queue: Queue, courseKey: string, learners: string[], status: 'active' | 'inactive') {
  return queue.add('write-program-course-enrollments', {
    program_uuid: program.program_uuid,
    course_key: courseKey,
    action: 'create_or_update',
    enrollments: learners.map((student_key) => ({ student_key, status })),
  });
}

/**
 * Checks the stream of `courseKey`'s enrollment events against the outbox and the CE history:
 * every row there under its id (duplicates allowed only when `duplicates`), nothing else, and per
 * account the first appearances of its events in the order of the CE's history rows.
 */
async function expectDelivered(courseKey: string, duplicates: boolean): Promise<{ entries: number; rows: number }> {
  const rows = (await outboxRows(t.sql)).filter((r) => r.course_key === courseKey);
  const rowById = new Map(rows.map((r) => [r.event_id, r]));
  const ours = (await streamEntries(reader, streamsOf(t.prefix).enrollments)).filter((e) => rowById.has(e.id));
  expect(new Set(ours.map((e) => e.id))).toEqual(new Set(rowById.keys()));
  if (!duplicates) expect(ours.length).toBe(rows.length);
  // Per account: the events as first published, and the CE's history in commit order.
  const published = new Map<number, string[]>();
  const seen = new Set<string>();
  for (const e of ours) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    const r = rowById.get(e.id)!;
    expect(e.type).toBe(r.event_type);
    const list = published.get(r.user_id) ?? [];
    list.push(`${r.event_type.includes('created') ? 'created' : 'changed'} ${r.mode} ${r.is_active}`);
    published.set(r.user_id, list);
  }
  const history = await t.sql<
    { ce: number; user_id: number; action: string; changes: Record<string, [unknown, unknown]> }[]
  >`
    select h.entity_id::int as ce, ce.user_id::int as user_id, h.action, h.changes
    from history h join course_enrollments ce on ce.id = h.entity_id
    where h.entity = 'course_enrollment' and ce.course_key = ${courseKey}
    order by h.id`;
  const state = new Map<number, { mode: unknown; is_active: unknown }>();
  const committed = new Map<number, string[]>();
  for (const h of history) {
    const now = { ...(state.get(h.ce) ?? { mode: null, is_active: null }) };
    if (h.changes.mode) now.mode = h.changes.mode[1];
    if (h.changes.is_active) now.is_active = h.changes.is_active[1];
    state.set(h.ce, now);
    const list = committed.get(h.user_id) ?? [];
    list.push(`${h.action} ${now.mode} ${now.is_active}`);
    committed.set(h.user_id, list);
  }
  expect(published.size).toBe(committed.size);
  for (const [user, list] of committed) expect(published.get(user), `events of user ${user}`).toEqual(list);
  return { entries: ours.length, rows: rows.length };
}

describe('outbound events lose nothing', () => {
  it('Redis stopped for 30 s during a 10,000-learner realizing course write', async () => {
    const course = program.curricula[0]!.course_keys[0]!;
    const prefix = newPrefix();
    // Two processes: whichever relay leads when the event bus comes back publishes the rest.
    const a = await startPublisher(prefix);
    const b = await startPublisher(newPrefix());
    const { queues, close } = await queuesOn(prefix);
    try {
      const write = await courseWrite(queues.enrollments, course, keys, 'active');
      const stream = streamsOf(t.prefix).enrollments;
      await waitFor(
        async () => ((await entriesAdded(reader, stream)) > 0 ? true : undefined),
        60_000,
        'publishing',
        20,
      );
      await bus.stop();
      const stoppedAt = Date.now();
      // While the event bus is away: the service stays ready and the backlog shows in /metrics.
      expect((await fetch(`${a.service.url}/readyz`)).status).toBe(200);
      // Writes go on: a tenth of the learners leave the course and come back, racing the big write.
      const some = keys.filter((_, i) => i % 10 === 3);
      expect(
        completed(await waitJob(queues.enrollments, await courseWrite(queues.enrollments, course, some, 'inactive')))
          .code,
      ).toBe(200);
      expect(
        completed(await waitJob(queues.enrollments, await courseWrite(queues.enrollments, course, some, 'active')))
          .code,
      ).toBe(200);
      const metrics = await (await fetch(`${a.service.url}/metrics`)).text();
      expect(Number(metrics.match(/^program_enrollments_outbox_backlog (\d+)$/m)?.[1])).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - stoppedAt))));
      await bus.start();
      expect(completed(await waitJob(queues.enrollments, write, 300_000)).counts).toEqual({ active: LEARNERS });
      await untilAllPublished(t.sql, 120_000);

      // A pipeline cut by the stop may have been written without its answer: those rows go again.
      const { rows } = await expectDelivered(course, true);
      // Each learner's CE was created; each of the tenth changed once or twice more, as the jobs raced.
      expect(rows).toBeGreaterThanOrEqual(LEARNERS + some.length);
      // One line when the outage starts and one when it ends, in whichever relay led. A relay that
      // saw the outage says it ended at its next leading round, which may come after the other
      // one has published everything.
      const count = (relay: { lines: Array<{ msg: string }> }, start: string) =>
        relay.lines.filter((l) => l.msg.startsWith(start)).length;
      await waitFor(
        async () =>
          [a, b].every((relay) => count(relay, 'event bus reachable again') === count(relay, 'event bus unreachable'))
            ? true
            : undefined,
        30_000,
        'each relay that saw the outage to see it end',
        20,
      );
      for (const relay of [a, b]) expect(count(relay, 'event bus unreachable')).toBeLessThanOrEqual(1);
      expect(count(a, 'event bus unreachable') + count(b, 'event bus unreachable')).toBeGreaterThanOrEqual(1);
    } finally {
      await close();
      await a.service.stop();
      await b.service.stop();
    }
  }, 600_000);

  it('a service killed with SIGKILL after its write committed, while publishing: another one publishes the rest', async () => {
    const course = program.curricula[0]!.course_keys[1]!;
    const stream = streamsOf(t.prefix).enrollments;
    const prefix = newPrefix();
    const { queues, close } = await queuesOn(prefix);
    // With no consumer group nothing is trimmed: a limit of what the stream holds plus 4,500 makes
    // the child stop half way through the write's 10,000 events, the rest waiting in the outbox.
    const held = await reader.xlen(stream);
    const child = spawnServiceProcess(t, prefix, {
      EVENT_BUS_REDIS_URL: bus.url,
      EVENT_BUS_MAX_UNDELIVERED: String(held + 4_500),
    });
    let peer: Service | undefined;
    try {
      // The write commits while the event bus is away: its events wait in the outbox.
      await bus.stop();
      const done = await waitJob(
        queues.enrollments,
        await courseWrite(queues.enrollments, course, keys, 'active'),
        300_000,
      );
      expect(completed(done).counts).toEqual({ active: LEARNERS });
      await bus.start();
      await waitFor(
        async () => ((await reader.xlen(stream)) === held + 4_500 ? true : undefined),
        60_000,
        'the child to publish',
        20,
      );
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const left = (await outboxRows(t.sql)).filter((r) => r.course_key === course && !r.published);
      // Its last round may have written its entries and died before marking them: those go again.
      expect(left.length).toBeGreaterThanOrEqual(LEARNERS - 4_500);
      expect(left.length).toBeLessThan(LEARNERS);

      peer = (await startPublisher(newPrefix())).service;
      await untilAllPublished(t.sql, 120_000);
      const { rows } = await expectDelivered(course, true);
      expect(rows).toBe(LEARNERS);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await close();
      await peer?.stop();
    }
  }, 600_000);

  it('three processes publishing at once publish each row once, in order', async () => {
    const course = program.curricula[0]!.course_keys[2]!;
    const prefix = newPrefix();
    const publishers = [
      await startPublisher(prefix),
      await startPublisher(newPrefix()),
      await startPublisher(newPrefix()),
    ];
    const { queues, close } = await queuesOn(prefix);
    try {
      const done = await waitJob(
        queues.enrollments,
        await courseWrite(queues.enrollments, course, keys, 'active'),
        300_000,
      );
      expect(completed(done).counts).toEqual({ active: LEARNERS });
      await untilAllPublished(t.sql, 120_000);
      const { entries, rows } = await expectDelivered(course, false);
      expect(entries).toBe(LEARNERS);
      expect(rows).toBe(LEARNERS);
    } finally {
      await close();
      for (const p of publishers) await p.service.stop();
    }
  }, 300_000);
});
