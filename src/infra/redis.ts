import { Cluster, Redis, type RedisOptions } from 'ioredis';

export type RedisClient = Redis | Cluster;

export interface RedisTarget {
  url?: string;
  clusterNodes: string[];
}

/**
 * One connection to the configured Redis or Redis Cluster. BullMQ workers block on their
 * connection, so `forWorker` sets `maxRetriesPerRequest: null` as BullMQ requires and waits for
 * Redis to come back. The other connections serve HTTP requests and metrics scrapes: they fail at
 * once while Redis is away, so those answer an error instead of hanging.
 */
export function connectRedis(target: RedisTarget, options: { forWorker?: boolean; name?: string } = {}): RedisClient {
  const base: RedisOptions = {
    maxRetriesPerRequest: options.forWorker ? null : 1,
    enableOfflineQueue: Boolean(options.forWorker),
    connectionName: options.name ?? 'program-enrollments',
  };
  if (target.clusterNodes.length > 0) {
    const nodes = target.clusterNodes.map((hp) => {
      const [host, port] = hp.split(':');
      return { host: host ?? '127.0.0.1', port: Number(port) };
    });
    return new Cluster(nodes, { redisOptions: base, enableOfflineQueue: base.enableOfflineQueue ?? true });
  }
  if (!target.url) throw new Error('no Redis configured');
  return new Redis(target.url, base);
}

/** Resolves once the connection is ready (a fail-fast connection refuses commands before that). */
export function untilReady(client: RedisClient, timeoutMs = 30_000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs);
    client.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * One warning when Redis goes away and one info line when every connection of the process is back,
 * however many connections retry and however often (ioredis retries each every few hundred ms).
 */
export interface RedisOutageWatch {
  watch(client: RedisClient, name: string): void;
  /** From now on connections close on purpose (the service is stopping): no warning for them. */
  closing(): void;
}

export function watchRedisOutages(
  log: { warn(o: object, m: string): void; info(o: object, m: string): void },
  onReconnect: () => void,
): RedisOutageWatch {
  const down = new Set<string>();
  let since = 0;
  let attempts = 0;
  let closingOnPurpose = false;
  return {
    closing() {
      closingOnPurpose = true;
    },
    watch(client, name) {
      let wasReady = client.status === 'ready';
      client.on('ready', () => {
        wasReady = true;
        if (!down.delete(name)) return;
        onReconnect();
        if (down.size === 0) log.info({ outageMs: Date.now() - since, attempts }, 'Redis is back');
      });
      client.on('reconnecting', () => {
        attempts += 1;
      });
      client.on('close', () => {
        if (!wasReady || closingOnPurpose) return;
        wasReady = false;
        if (down.size === 0) {
          since = Date.now();
          attempts = 0;
          log.warn({ connection: name }, 'lost the connection to Redis; retrying until it is back');
        }
        down.add(name);
      });
      // Reported by the lines above; an 'error' listener is still needed, or ioredis prints each one.
      client.on('error', () => {});
    },
  };
}

/**
 * What ioredis and Redis say when the server is away, loading, or (on a Cluster) moving slots or
 * electing: faults that pass, not mistakes in the command. A restarted Cluster master answers
 * `MOVED`/`CLUSTERDOWN` until the cluster agrees again, and ioredis gives up on such a command
 * after 16 redirections with "Too many Cluster redirections. Last error: …". Case-sensitive and
 * bounded, so that an ordinary message ("task", "asked") never reads as one.
 */
const REDIS_AWAY =
  /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTCONN|Stream isn't writeable|MaxRetriesPerRequest|max retries per request|\bLOADING\b|\bCLUSTERDOWN\b|\bTRYAGAIN\b|\bMOVED \d|\bASK \d|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available|Cluster isn't ready|enableOfflineQueue|\bREADONLY\b/;

/**
 * An error that only says Redis is away (or moving): the outage watch has said so already, and a
 * job that met it is retried (src/jobs/errors.ts `asRetryable`).
 */
export function isRedisConnectionError(err: Error): boolean {
  return REDIS_AWAY.test(err.message);
}

/**
 * A job whose lock expired while Redis was away (or the process stalled): BullMQ refuses to record
 * this run's completion, and the stall check hands the job to another run, which finds its result
 * in the ledger. Worth an info line, not an error.
 */
export function isLostJobLock(err: Error): boolean {
  return /Missing lock for job|Lock mismatch for job/i.test(err.message);
}

/** BullMQ's word that a lock renewal failed; the worker's `lockRenewalFailed` handler acts on it. */
export function isLockRenewalFailure(err: Error): boolean {
  return /could not renew lock for job/i.test(err.message);
}
