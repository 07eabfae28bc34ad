/**
 * The fault suite's real processes: a private redis-server (never the shared one), the service as
 * `node src/main.ts` children that a test kills, and the tally every scenario adds to, which
 * test/faults/summary.ts sums up in the suite's last line.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Job, Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, expect } from 'vitest';
import { freePort } from '../../src/infra/embedded.js';
import { type Account, accountCreatedPayload, newAccount, uniqueKey } from '../support/fixtures.js';
import { createTestDatabase, type FinishedJob, TEST_RETIREMENT_SALT, type TestService } from '../support/service.js';
import { REPORT_FILE, report, type Tally } from './report.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
const LOG_DIR = path.join(ROOT, '.data/faults/logs');

export { REPORT_FILE, report, type Tally };

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitUntil<T>(
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * GET of a service URL. A socket kept alive from an earlier request may be one the server has
 * just closed for idleness (Fastify's keep-alive timeout), which fails the request: the request is
 * made again until the deadline.
 */
export async function httpGet(url: string, timeoutMs = 30_000): Promise<{ status: number; body: string }> {
  return waitUntil(
    async () => {
      const res = await fetch(url);
      return { status: res.status, body: await res.text() };
    },
    timeoutMs,
    `GET ${url}`,
  );
}

// ---------------------------------------------------------------------------------------------
// A private redis-server with an append-only file, restartable on the same port and directory.

export interface PrivateRedis {
  url: string;
  port: number;
  dir: string;
  /** SIGTERM (flushes the append-only file) and wait for the exit. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops and deletes the directory. */
  destroy(): Promise<void>;
}

export async function startRedis(extraArgs: string[] = [], port?: number): Promise<PrivateRedis> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pe-faults-redis-'));
  let child: ChildProcess | null = null;
  const redis: PrivateRedis = {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    dir,
    async start() {
      child = spawn(
        'redis-server',
        [
          '--port',
          String(p),
          '--bind',
          '127.0.0.1',
          '--appendonly',
          'yes',
          '--appendfsync',
          'everysec',
          '--save',
          '',
          '--maxmemory-policy',
          'noeviction',
          '--dir',
          dir,
          '--loglevel',
          'warning',
          ...extraArgs,
        ],
        { stdio: 'ignore' },
      );
      const probe = new Redis(p, '127.0.0.1', {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      probe.on('error', () => {});
      await waitUntil(
        async () => {
          await probe.connect().catch(() => {});
          return (await probe.ping()) === 'PONG';
        },
        20_000,
        `redis-server on ${p}`,
      );
      probe.disconnect();
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    },
    async destroy() {
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await redis.start();
  return redis;
}

// ---------------------------------------------------------------------------------------------
// The service as a real process.

export interface ServiceProcess {
  child: ChildProcess;
  pid: number;
  /** BullMQ's `processedBy` of this process's jobs (the worker name, host:pid). */
  workerName: string;
  url: string;
  logFile: string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function spawnService(env: Record<string, string>): Promise<ServiceProcess> {
  const port = await freePort();
  mkdirSync(LOG_DIR, { recursive: true });
  const logFile = path.join(LOG_DIR, `service-${Date.now()}-${randomBytes(3).toString('hex')}.log`);
  const out = createWriteStream(logFile);
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}; see ${logFile}`);
      return (await fetch(`${url}/readyz`)).status === 200;
    },
    // Minutes, not seconds: on a loaded two-core machine tsx alone may take that long to start.
    240_000,
    `service ready (${logFile})`,
    200,
  ).catch((err) => {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}; see ${logFile}`);
    child.kill('SIGKILL');
    throw err;
  });
  return {
    child,
    pid: child.pid!,
    workerName: `${os.hostname()}:${child.pid}`,
    url,
    logFile,
    exited,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

/** Starts `n` service processes at once; the ones that started are in `into` even if one fails. */
export async function spawnServices(n: number, env: Record<string, string>, into: ServiceProcess[]): Promise<void> {
  const started = await Promise.allSettled(Array.from({ length: n }, () => spawnService(env)));
  for (const s of started) if (s.status === 'fulfilled') into.push(s.value);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Log lines of a service process at `level` or above (pino numbers: 40 warn, 50 error, 60 fatal). */
export function logLines(s: ServiceProcess, minLevel: number): Array<{ level: number; msg: string }> {
  return readFileSync(s.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .filter((l) => l.level >= minLevel);
}

// ---------------------------------------------------------------------------------------------
// A scenario's world: its own database, queue prefix and producers on a given Redis.

export interface World {
  prefix: string;
  databaseUrl: string;
  sql: Sql;
  redis: Redis | Cluster;
  queues: { enrollments: Queue; accounts: Queue };
  /** Enough of a TestService for the fixtures' adders and readers. */
  t: TestService;
  env(extra?: Record<string, string>): Record<string, string>;
  close(): Promise<void>;
}

export async function openWorld(redisEnv: Record<string, string>, redis: Redis | Cluster): Promise<World> {
  const database = await createTestDatabase();
  const prefix = redisEnv.QUEUE_PREFIX ?? `f${randomBytes(4).toString('hex')}`;
  const queues = {
    enrollments: new Queue('enrollments', { connection: redis, prefix }),
    accounts: new Queue('accounts', { connection: redis, prefix }),
  };
  for (const q of Object.values(queues)) q.on('error', () => {});
  const sql = postgres(database.url, { max: 4, onnotice: () => {} });
  const wait = async <R>(job: Job, timeoutMs = 300_000): Promise<FinishedJob<R>> => {
    const queue = queues[job.queueName as 'enrollments' | 'accounts'];
    return waitUntil(
      async () => {
        const state = await job.getState();
        if (state !== 'completed' && state !== 'failed') return undefined;
        const fresh = (await Job.fromId(queue, job.id!))!;
        return { job: fresh, state, result: fresh.returnvalue as R, failedReason: fresh.failedReason };
      },
      timeoutMs,
      `job ${job.name} ${job.id}`,
      50,
    );
  };
  const t = {
    sql,
    prefix,
    databaseUrl: database.url,
    queues,
    add: (queue: 'enrollments' | 'accounts', name: string, data: unknown, opts?: object) =>
      queues[queue].add(name, data, opts),
    wait,
    async run(queue: 'enrollments' | 'accounts', name: string, data: unknown, opts?: object) {
      return wait(await queues[queue].add(name, data, opts));
    },
  } as unknown as TestService;
  return {
    prefix,
    databaseUrl: database.url,
    sql,
    redis,
    queues,
    t,
    env: (extra = {}) => ({
      ...redisEnv,
      DATABASE_URL: database.url,
      RETIREMENT_SALT: TEST_RETIREMENT_SALT,
      QUEUE_PREFIX: prefix,
      ...extra,
    }),
    async close() {
      await Promise.all(Object.values(queues).map((q) => q.close().catch(() => {})));
      await sql.end({ timeout: 5 });
      await database.drop();
    },
  };
}

/** States of jobs by id, read in one pass per queue. */
export async function jobStates(queue: Queue, ids: string[]): Promise<Map<string, string>> {
  const states = new Map<string, string>();
  for (const id of ids) states.set(id, await queue.getJobState(id));
  return states;
}

/**
 * Waits until every job is completed or failed, and returns how many ended otherwise (failed, or
 * still not done at the deadline: lost). Reads the states of the pending jobs in one pipeline per
 * poll, to keep Redis traffic low; a poll that meets Redis away counts nothing.
 */
export async function waitAllDone(
  queue: Queue,
  ids: string[],
  timeoutMs: number,
): Promise<{ completed: number; failed: string[]; missing: string[] }> {
  const pending = new Set(ids);
  const failed: string[] = [];
  await waitUntil(
    async () => {
      const states = await Promise.all([...pending].map(async (id) => [id, await queue.getJobState(id)] as const));
      for (const [id, state] of states) {
        if (state === 'completed') pending.delete(id);
        else if (state === 'failed') {
          pending.delete(id);
          failed.push(id);
        }
      }
      return pending.size === 0;
    },
    timeoutMs,
    `${ids.length} jobs of ${queue.name} to finish`,
    250,
  ).catch(() => {});
  return { completed: ids.length - failed.length - pending.size, failed, missing: [...pending] };
}

/** `id: failed reason` of each failed job, for an assertion message that says why. */
export async function failedReasons(queue: Queue, ids: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const id of ids) out.push(`${id}: ${(await queue.getJob(id))?.failedReason}`);
  return out;
}

/**
 * Seconds from a kill until every job the killed process held is running elsewhere (or done):
 * the jobs whose `processedBy` is the dead worker, polled every 100 ms.
 */
export async function measureResume(
  queues: Queue[],
  killed: ServiceProcess,
  kill: () => Promise<void>,
  timeoutMs = 60_000,
): Promise<number> {
  const held: Array<{ queue: Queue; id: string }> = [];
  for (const queue of queues) {
    for (const job of await queue.getActive()) {
      if (job.processedBy === killed.workerName) held.push({ queue, id: job.id! });
    }
  }
  const killedAt = Date.now();
  await kill();
  if (held.length === 0) return 0;
  await waitUntil(
    async () => {
      for (const { queue, id } of held) {
        const job = await Job.fromId(queue, id);
        if (!job) continue;
        const state = await job.getState();
        if (state === 'active' && job.processedBy === killed.workerName) return false;
        if (state !== 'active' && state !== 'completed' && state !== 'failed') return false;
      }
      return true;
    },
    timeoutMs,
    'the killed process jobs to run elsewhere',
    100,
  );
  return (Date.now() - killedAt) / 1000;
}

/** `CLUSTER INFO` of the node on `port`. */
export function clusterInfo(port: number): string {
  return spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info'], { encoding: 'utf8' }).stdout;
}

/**
 * Three redis-server masters on loopback joined into a Redis Cluster (`redis-cli --cluster create`),
 * each with its own directory (append-only file and nodes.conf), so that one restarts into its
 * place with its slots and data.
 */
export interface RedisCluster {
  masters: PrivateRedis[];
  /** `host:port,…` of the masters, as REDIS_CLUSTER_NODES takes them. */
  seeds: string;
  destroy(): Promise<void>;
}

export async function startRedisCluster(): Promise<RedisCluster> {
  const masters: PrivateRedis[] = [];
  for (let i = 0; i < 3; i++)
    masters.push(await startRedis(['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000']));
  const create = spawnSync(
    'redis-cli',
    ['--cluster', 'create', ...masters.map((m) => `127.0.0.1:${m.port}`), '--cluster-replicas', '0', '--cluster-yes'],
    { encoding: 'utf8' },
  );
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout} ${create.stderr}`);
  await waitUntil(
    async () => {
      for (const m of masters) if (!clusterInfo(m.port).includes('cluster_state:ok')) return false;
      return true;
    },
    30_000,
    'the cluster to be ok',
    200,
  );
  return {
    masters,
    seeds: masters.map((m) => `127.0.0.1:${m.port}`).join(','),
    async destroy() {
      for (const m of masters) await m.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A scenario's scene: Redis (a private server or a Cluster), a producer, a world and the service
// processes, set up before the file's tests and torn down after them.

export interface Scene {
  /** The private Redis (a scene on one server). */
  redis: PrivateRedis;
  /** The private Redis Cluster (a scene with `cluster: true`). */
  cluster: RedisCluster;
  producer: Redis | Cluster;
  world: World;
  /** Every service process started, killed ones included; all get SIGTERM at the end. */
  processes: ServiceProcess[];
  /** Starts one more service process with the scene's environment (as the supervisor would). */
  start(): Promise<ServiceProcess>;
}

export function useScene(options: {
  cluster?: boolean;
  /** Service processes started before the tests. */
  services?: number;
  env?: Record<string, string>;
}): Scene {
  const scene = { processes: [] as ServiceProcess[] } as Scene;
  scene.start = async () => {
    const p = await spawnService(scene.world.env(options.env));
    scene.processes.push(p);
    return p;
  };
  beforeAll(async () => {
    if (options.cluster) {
      scene.cluster = await startRedisCluster();
      scene.producer = new Cluster(
        scene.cluster.masters.map((m) => ({ host: '127.0.0.1', port: m.port })),
        { redisOptions: { maxRetriesPerRequest: null } },
      );
    } else {
      scene.redis = await startRedis();
      scene.producer = new Redis(scene.redis.url, { maxRetriesPerRequest: null });
    }
    scene.producer.on('error', () => {});
    // On a Cluster every queue key shares the prefix's hash tag (BullMQ's requirement).
    const redisEnv: Record<string, string> = options.cluster
      ? { REDIS_CLUSTER_NODES: scene.cluster.seeds, QUEUE_PREFIX: `{fc${randomBytes(3).toString('hex')}}` }
      : { REDIS_URL: scene.redis.url };
    scene.world = await openWorld(redisEnv, scene.producer);
    await spawnServices(options.services ?? 0, scene.world.env(options.env), scene.processes);
  });
  afterAll(async () => {
    for (const p of scene.processes) await p.kill('SIGTERM');
    await scene.world?.close();
    scene.producer?.disconnect();
    await scene.redis?.destroy();
    await scene.cluster?.destroy();
  });
  return scene;
}

// ---------------------------------------------------------------------------------------------
// The workload pieces the scenarios share.

export interface WaitingLearner {
  key: string;
  account: Account;
}

/** `n` waiting program enrollments (no account yet), written and completed before the fault. */
export async function enrollWaiting(
  world: World,
  program: { program_uuid: string },
  n: number,
  label: string,
): Promise<WaitingLearner[]> {
  const learners = Array.from({ length: n }, () => ({ key: uniqueKey(label), account: newAccount() }));
  const done = await world.t.run('enrollments', 'write-program-enrollments', {
    program_uuid: program.program_uuid,
    action: 'create',
    enrollments: learners.map((l) => ({ student_key: l.key, status: 'enrolled' })),
  });
  expect(done.state).toBe('completed');
  return learners;
}

/** A bulk `create` of `keys` as enrolled, added to the queue (not waited for). */
export function addBulkWrite(world: World, program: { program_uuid: string }, keys: string[]): Promise<Job> {
  return world.queues.enrollments.add('write-program-enrollments', {
    program_uuid: program.program_uuid,
    action: 'create',
    enrollments: keys.map((k) => ({ student_key: k, status: 'enrolled' })),
  });
}

/** One account-created event per learner, naming its program identity; returns the job ids. */
export async function addAccountEvents(
  world: World,
  program: { organization_key: string },
  learners: WaitingLearner[],
): Promise<string[]> {
  const jobs = await world.queues.accounts.addBulk(
    learners.map((l) => ({
      name: 'account-created',
      data: accountCreatedPayload(
        l.account,
        [{ organization_key: program.organization_key, external_user_key: l.key }],
        randomUUID(),
      ),
    })),
  );
  return jobs.map((j) => j.id!);
}

/**
 * A program's enrollments (all, and unlinked) beside the history of the world's database: PEs
 * created and PEs linked to an account. Each created or linked twice shows as one too many.
 */
export async function programCounts(
  world: World,
  programUuid: string,
): Promise<{ pes: number; unlinked: number; created: number; links: number }> {
  const [row] = await world.sql<{ pes: number; unlinked: number; created: number; links: number }[]>`
    select (select count(*)::int from program_enrollments where program_uuid = ${programUuid}) as pes,
           (select count(*)::int from program_enrollments where program_uuid = ${programUuid} and user_id is null) as unlinked,
           (select count(*)::int from history where entity = 'program_enrollment' and action = 'created') as created,
           (select count(*)::int from history where entity = 'program_enrollment' and action = 'changed' and changes ? 'user_id') as links`;
  return row!;
}
