import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';
import { freePort } from '../src/infra/embedded.js';
import { newPrefix, queuesOn, startServiceOn } from './support/extra-services.js';
import { newProgram, uniqueKey } from './support/fixtures.js';
import { createTestDatabase, deleteKeysUnder, useTestService, waitFor, waitJob } from './support/service.js';

const root = path.resolve(import.meta.dirname, '..');

/** Descendant process command lines of `pid` (Linux /proc), to prove nothing is left behind. */
function descendants(pid: number): Array<{ pid: number; args: string }> {
  const out = spawnSync('ps', ['-e', '-o', 'pid=,ppid=,args='], { encoding: 'utf8' }).stdout;
  const rows = out
    .trim()
    .split('\n')
    .map((l) => l.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/)!)
    .filter(Boolean);
  const found: Array<{ pid: number; args: string }> = [];
  const walk = (p: number) => {
    for (const r of rows) if (Number(r[2]) === p) found.push({ pid: Number(r[1]), args: r[3]! }), walk(Number(r[1]));
  };
  walk(pid);
  return found;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitReady(url: string, child: ReturnType<typeof spawn>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode}`);
      const status = await fetch(`${url}/readyz`).then(
        (r) => r.status,
        () => 0,
      );
      return status === 200 ? true : undefined;
    },
    timeoutMs,
    '/readyz to answer 200',
    50,
  );
  return Date.now() - started;
}

/** Sends SIGTERM and awaits the exit, for at most 15 s (then the code is null: it did not exit). */
async function stopWithSigterm(child: ReturnType<typeof spawn>): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  let deadline: NodeJS.Timeout | undefined;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<null>((r) => (deadline = setTimeout(() => r(null), 15_000)))]);
  clearTimeout(deadline);
  return { code, ms: Date.now() - started };
}

describe('npm start', () => {
  it('starts its own Redis and Postgres when REDIS_URL and DATABASE_URL are unset, and leaves nothing behind on SIGTERM', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'pe-start-'));
    const port = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
    };
    delete env.REDIS_URL;
    delete env.DATABASE_URL;
    // `npm start` itself: npm must pass SIGTERM on to the service (its script execs node for that).
    const child = spawn('npm', ['start', '--silent'], { cwd: root, env, stdio: 'ignore' });
    try {
      const readyMs = await waitReady(`http://127.0.0.1:${port}`, child, 60_000);
      expect(readyMs).toBeLessThan(60_000);
      const children = descendants(child.pid!);
      expect(children.some((c) => c.args.startsWith('redis-server'))).toBe(true);
      expect(children.some((c) => c.args.includes('postgres'))).toBe(true);
      const { code, ms } = await stopWithSigterm(child);
      expect(code).toBe(0);
      expect(ms).toBeLessThan(10_000);
      // The private Redis and Postgres the service started are gone.
      const services = children.filter((c) => /redis-server|postgres/.test(c.args));
      expect(services.filter((c) => alive(c.pid)).map((c) => c.args)).toEqual([]);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('runs on the given Redis and Postgres and exits 0 on SIGTERM', async () => {
    const database = await createTestDatabase();
    const prefix = newPrefix();
    const port = await freePort();
    const env = {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      REDIS_URL: inject('redisUrl'),
      DATABASE_URL: database.url,
      QUEUE_PREFIX: prefix,
    };
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
      cwd: root,
      env,
      stdio: 'ignore',
    });
    try {
      await waitReady(`http://127.0.0.1:${port}`, child, 60_000);
      expect(descendants(child.pid!)).toEqual([]);
      const { code, ms } = await stopWithSigterm(child);
      expect(code).toBe(0);
      expect(ms).toBeLessThan(10_000);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await database.drop();
      const redis = new Redis(inject('redisUrl'));
      await deleteKeysUnder(redis, prefix);
      await redis.quit();
    }
  });

  it('stops with a bad configuration, naming the variable', () => {
    const out = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src/main.ts')], {
      cwd: root,
      env: { ...process.env, PORT: 'eighty' },
      encoding: 'utf8',
    });
    expect(out.status).toBe(2);
    expect(out.stderr).toContain('PORT');
  });
});

describe('graceful shutdown during a long job', () => {
  const t = useTestService();
  it('hands the job back; another process finishes it with every record applied once', async () => {
    const program = await newProgram(t);
    const prefix = newPrefix();
    const { queues, close } = await queuesOn(prefix);
    const first = await startServiceOn(t, prefix, { WRITE_CHUNK_SIZE: '200', SHUTDOWN_GRACE_MS: '300' });
    const keys = Array.from({ length: 30_000 }, () => uniqueKey());
    const job = await queues.enrollments.add('write-program-enrollments', {
      program_uuid: program.program_uuid,
      action: 'create',
      enrollments: keys.map((k) => ({ student_key: k, status: 'enrolled' })),
    });
    // Stop the first process once the job has applied its first chunk.
    await waitFor(
      async () => {
        const progress = (await queues.enrollments.getJob(job.id!))!.progress as { done?: number };
        return progress && typeof progress === 'object' && (progress.done ?? 0) > 0 ? true : undefined;
      },
      60_000,
      'the first progress report of the long write',
      20,
    );
    const started = Date.now();
    await first.stop();
    expect(Date.now() - started).toBeLessThan(10_000);
    const partial =
      await t.sql`select count(*)::int as n from program_enrollments where program_uuid = ${program.program_uuid}`;
    expect(partial[0]!.n).toBeLessThan(30_000);

    const second = await startServiceOn(t, prefix);
    try {
      const done = await waitJob(queues.enrollments, job, 120_000);
      expect(done.state).toBe('completed');
      expect(done.result.counts).toEqual({ enrolled: 30_000 });
      const [{ n }] =
        (await t.sql`select count(*)::int as n from program_enrollments where program_uuid = ${program.program_uuid}`) as any;
      expect(n).toBe(30_000);
      const [{ h }] = (await t.sql`
        select count(*)::int as h from history h join program_enrollments pe on pe.id = h.entity_id
        where h.entity = 'program_enrollment' and pe.program_uuid = ${program.program_uuid}`) as any;
      expect(h).toBe(30_000);
    } finally {
      await second.stop();
      await close();
    }
  });
});
