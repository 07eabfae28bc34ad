import net from 'node:net';
import postgres from 'postgres';
import { type EmbeddedPostgresOptions, startEmbeddedPostgres, startPrivateRedis } from './embedded.js';

/**
 * Redis and Postgres for the programs that run beside the service (the test suite, the benchmark):
 * REDIS_URL / DATABASE_URL when set, else the service on its usual local port when it answers, else
 * a private one started here. The service itself does not probe local ports (see app.ts).
 */
export interface LocatedService {
  url: string;
  /** Where the URL came from, as a report names it: the environment variable, `local`, or what was started. */
  source: string;
  /** Stops what was started here; a service that was found running is left alone. */
  stop(): Promise<void>;
}

export const LOCAL_REDIS_URL = 'redis://127.0.0.1:6379';
export const LOCAL_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

const leaveRunning = async (): Promise<void> => {};

/** Whether something accepts TCP connections on the loopback port within a second. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(1_000);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

/** Whether `url` logs in and runs a query: an open port 5432 may be a Postgres we may not use. */
async function postgresAnswers(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    // A connection probe, not a statement of the service: the queries live in src/db/.
    await sql.unsafe('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** REDIS_URL, else the local redis on 6379, else a private redis-server (source `private`). */
export async function locateRedis(): Promise<LocatedService> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) return { url: fromEnv, source: 'REDIS_URL', stop: leaveRunning };
  if (await answers(6379)) return { url: LOCAL_REDIS_URL, source: 'local', stop: leaveRunning };
  const redis = await startPrivateRedis();
  return { url: redis.url, source: 'private', stop: () => redis.stop() };
}

export interface PrivatePostgresOptions extends Omit<EmbeddedPostgresOptions, 'dataDir'> {
  /**
   * The private cluster's directory, or a function that makes one; the function is called only when
   * a private cluster is started, so that a throwaway directory exists only when it is used.
   */
  dataDir: string | (() => string);
}

/**
 * DATABASE_URL (an admin URL), else the local Postgres on 5432 when it lets `postgres` in, else an
 * embedded cluster (source `embedded`) with `privateCluster`'s directory and flags.
 */
export async function locatePostgres(privateCluster: PrivatePostgresOptions): Promise<LocatedService> {
  const fromEnv = process.env.DATABASE_URL;
  if (fromEnv) return { url: fromEnv, source: 'DATABASE_URL', stop: leaveRunning };
  if ((await answers(5432)) && (await postgresAnswers(LOCAL_POSTGRES_URL))) {
    return { url: LOCAL_POSTGRES_URL, source: 'local', stop: leaveRunning };
  }
  const { dataDir, ...flags } = privateCluster;
  const pg = await startEmbeddedPostgres({ ...flags, dataDir: typeof dataDir === 'function' ? dataDir() : dataDir });
  return { url: pg.url, source: 'embedded', stop: () => pg.stop() };
}
