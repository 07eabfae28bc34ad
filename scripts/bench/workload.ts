/**
 * The service's figures, driven as its producers drive it: BullMQ jobs on its queues, timed from
 * `add` to completion. Nothing here calls the service's code; only the accounts seeding writes
 * Postgres directly (see seedKnownAccounts).
 */
import { randomUUID } from 'node:crypto';
import { Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import type { Sql } from 'postgres';
import { percentile } from './stats.js';

export const ORG = 'BenchU';
/**
 * The program's courses: the writes go to the first, the account events realize learners waiting
 * in the first two, and the realized write with EVENT_BUS=off goes to the second and the third
 * (scripts/bench.ts, cost of the outbound events).
 */
export const COURSES = [
  'course-v1:BenchU+B101+2026',
  'course-v1:BenchU+B102+2026',
  'course-v1:BenchU+B103+2026',
] as const;
const ADD_BULK_BATCH = 1_000;

export interface WriteResult {
  code: number;
  counts: Record<string, number>;
}

/** Producer queues and completion listeners on the service's prefix. */
export class Producer {
  readonly enrollments: Queue;
  readonly accounts: Queue;
  private readonly enrollmentEvents: QueueEvents;
  private readonly accountEvents: QueueEvents;
  /** jobId → completion time (ms, Redis clock) and result, from the accounts queue's event stream. */
  private readonly accountCompletions = new Map<string, { at: number; result: unknown }>();
  private accountFailure: string | undefined;
  private onAccountEvent: () => void = () => {};
  private readonly connections: Redis[] = [];

  private constructor(redisUrl: string, prefix: string) {
    const connect = () => {
      const c = new Redis(redisUrl, { maxRetriesPerRequest: null });
      this.connections.push(c);
      return c;
    };
    const producer = connect();
    this.enrollments = new Queue('enrollments', { connection: producer, prefix });
    this.accounts = new Queue('accounts', { connection: producer, prefix });
    this.enrollmentEvents = new QueueEvents('enrollments', { connection: connect(), prefix });
    this.accountEvents = new QueueEvents('accounts', { connection: connect(), prefix });
    // The stream entry's id is the Redis time of the completion, whatever this process's lag.
    this.accountEvents.on('completed', ({ jobId, returnvalue }, id) => {
      this.accountCompletions.set(jobId, { at: Number(id.split('-')[0]), result: returnvalue });
      this.onAccountEvent();
    });
    this.accountEvents.on('failed', ({ jobId, failedReason }) => {
      this.accountFailure ??= `account job ${jobId} failed: ${failedReason}`;
      this.onAccountEvent();
    });
  }

  static async open(redisUrl: string, prefix: string): Promise<Producer> {
    const p = new Producer(redisUrl, prefix);
    await Promise.all([p.enrollmentEvents.waitUntilReady(), p.accountEvents.waitUntilReady()]);
    return p;
  }

  async close(): Promise<void> {
    await Promise.all([this.enrollmentEvents.close(), this.accountEvents.close()]);
    await Promise.all([this.enrollments.close(), this.accounts.close()]);
    await Promise.all(this.connections.map((c) => c.quit().catch(() => c.disconnect())));
  }

  /** Adds one enrollments job and waits for it; throws if it failed. */
  async run(name: string, data: object, timeoutMs = 30 * 60_000): Promise<Job> {
    const job = await this.enrollments.add(name, data);
    try {
      await job.waitUntilFinished(this.enrollmentEvents, timeoutMs);
    } catch (err) {
      throw new Error(`${name} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    return (await Job.fromId(this.enrollments, job.id!))!;
  }

  /**
   * Resolves once every one of `ids` has completed on the accounts queue; throws on a failure, or
   * when none completes for `stallMs` (a busy machine may be slow, but it makes progress).
   */
  async accountsCompleted(ids: readonly string[], stallMs = 120_000): Promise<Array<{ at: number; result: unknown }>> {
    let deadline = Date.now() + stallMs;
    const pending = new Set(ids.filter((id) => !this.accountCompletions.has(id)));
    while (pending.size > 0) {
      if (this.accountFailure) throw new Error(this.accountFailure);
      const remaining = deadline - Date.now();
      if (remaining <= 0)
        throw new Error(`${pending.size} of ${ids.length} account events unfinished, none for ${stallMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(remaining, 5_000));
        this.onAccountEvent = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      const before = pending.size;
      for (const id of pending) if (this.accountCompletions.has(id)) pending.delete(id);
      if (pending.size < before) deadline = Date.now() + stallMs;
    }
    return ids.map((id) => this.accountCompletions.get(id)!);
  }
}

/** A program of `ORG` whose active curriculum has the COURSES. */
export async function createProgram(producer: Producer): Promise<string> {
  const programUuid = randomUUID();
  await producer.run('upsert-program', {
    program_uuid: programUuid,
    organization_key: ORG,
    curricula: [{ curriculum_uuid: randomUUID(), is_active: true, course_keys: [...COURSES] }],
    courses: COURSES.map((course_key) => ({ course_key, modes: ['audit', 'masters'] })),
  });
  return programUuid;
}

export interface TimedWrite {
  /** Learners a second, from the add to the job's completion. */
  rate: number;
  ms: number;
  /** When the job was added (ms since the epoch, the producer's clock). */
  addedAt: number;
}

/** One bulk write job of `keys`, timed from add to completion; checks every learner got `expect`. */
export async function bulkWrite(
  producer: Producer,
  name: 'write-program-enrollments' | 'write-program-course-enrollments',
  data: Record<string, unknown>,
  keys: readonly string[],
  status: string,
  expect: string,
): Promise<TimedWrite> {
  const job = await producer.run(name, {
    ...data,
    action: 'create_or_update',
    enrollments: keys.map((student_key) => ({ student_key, status })),
  });
  const result = job.returnvalue as WriteResult;
  if (result.counts[expect] !== keys.length)
    throw new Error(`${name}: expected ${keys.length} ${expect}, got ${JSON.stringify(result.counts)}`);
  const ms = job.finishedOn! - job.timestamp;
  return { rate: keys.length / (ms / 1000), ms, addedAt: job.timestamp };
}

/**
 * Waits until the relay has published every outbox event (the outbound events of the writes so far)
 * and returns when that was (ms since the epoch); throws when the backlog stops shrinking for
 * `stallMs`. Polled every 50 ms, so the time is at most that late.
 */
export async function outboxPublished(sql: Sql, stallMs = 120_000): Promise<number> {
  let last = Number.POSITIVE_INFINITY;
  let deadline = Date.now() + stallMs;
  for (;;) {
    const [row] = await sql<[{ n: number }]>`
      select coalesce(sum(b.event_count - u.published), 0)::int as n
      from outbox_unpublished u join lateral (select event_count from outbox_batches where id = u.batch_id offset 0) b on true`;
    if (row.n === 0) return Date.now();
    if (row.n < last) {
      last = row.n;
      deadline = Date.now() + stallMs;
    } else if (Date.now() > deadline) throw new Error(`${row.n} outbox events unpublished for ${stallMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Makes the accounts of `keys` known, as `account-created` events would have (an account row,
 * and the learner row pointing at it), in two statements instead of one event per learner: the
 * realized bulk figures need 100,000 known accounts, which events would take minutes to announce.
 */
export async function seedKnownAccounts(sql: Sql, keys: readonly string[], userBase: number): Promise<void> {
  for (let start = 0; start < keys.length; start += 10_000) {
    const batch = keys.slice(start, start + 10_000);
    const ids = batch.map((_, i) => userBase + start + i);
    await sql`
      insert into accounts (user_id, username)
      select id, 'bench-' || id from unnest(${ids}::bigint[]) as id`;
    await sql`
      insert into learners (organization_key, student_key, user_id)
      select ${ORG}, v.key, v.id from unnest(${batch}::text[], ${ids}::bigint[]) as v(key, id)`;
  }
}

/** The `account-created` event of learner `key` with a fresh account. */
function accountCreated(runId: string, key: string, userId: number) {
  return {
    name: 'account-created',
    data: {
      event_id: `${runId}-${userId}`,
      user_id: userId,
      username: `bench-${userId}`,
      identities: [{ organization_key: ORG, external_user_key: key }],
    },
  };
}

/** Each event must have linked its learner's one PE with both its waiting PCEs (first two COURSES). */
function checkLinked(completions: ReadonlyArray<{ result: unknown }>): void {
  const wrong = completions.filter((c) => {
    const linked = (c.result as { linked?: Array<{ course_keys: string[] }> } | null)?.linked;
    return linked?.length !== 1 || linked[0]!.course_keys.length !== 2;
  });
  if (wrong.length)
    throw new Error(`${wrong.length} account events did not link 1 PE + 2 PCEs: ${JSON.stringify(wrong[0]!.result)}`);
}

/**
 * `account-created` at full speed: the queue is paused while the events are added, then resumed;
 * events/s from the resume to the last completion.
 */
export async function accountEventsFullSpeed(
  producer: Producer,
  runId: string,
  keys: readonly string[],
  userBase: number,
): Promise<number> {
  const events = keys.map((key, i) => accountCreated(runId, key, userBase + i));
  await producer.accounts.pause();
  const ids: string[] = [];
  try {
    for (let start = 0; start < events.length; start += ADD_BULK_BATCH) {
      const added = await producer.accounts.addBulk(events.slice(start, start + ADD_BULK_BATCH));
      ids.push(...added.map((j) => j.id!));
    }
  } finally {
    await producer.accounts.resume();
  }
  const resumedAt = Date.now();
  const completions = await producer.accountsCompleted(ids);
  checkLinked(completions);
  const lastAt = Math.max(...completions.map((c) => c.at));
  return keys.length / ((lastAt - resumedAt) / 1000);
}

export interface OfferedLoad {
  p50: number;
  p99: number;
  /** The rate the events were actually added at. */
  offered: number;
}

/** `account-created` offered at `perSecond`: latency from each event's add to its completion. */
export async function accountEventsOffered(
  producer: Producer,
  runId: string,
  keys: readonly string[],
  userBase: number,
  perSecond: number,
): Promise<OfferedLoad> {
  const events = keys.map((key, i) => accountCreated(runId, key, userBase + i));
  const added: Job[] = [];
  const started = performance.now();
  while (added.length < events.length) {
    const due = Math.min(events.length, Math.floor(((performance.now() - started) * perSecond) / 1000) + 1);
    if (due > added.length) added.push(...(await producer.accounts.addBulk(events.slice(added.length, due))));
    else await new Promise((r) => setTimeout(r, 1));
  }
  const addMs = performance.now() - started;
  const completions = await producer.accountsCompleted(added.map((j) => j.id!));
  checkLinked(completions);
  const latencies = completions.map((c, i) => c.at - added[i]!.timestamp).sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), offered: events.length / (addMs / 1000) };
}
