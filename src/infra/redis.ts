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
