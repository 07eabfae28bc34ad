import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../infra/redis.js';

/** Holds or takes the lease: refreshed when this token holds it, taken when nobody does. */
const HOLD_OR_TAKE = `
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`;

/**
 * Which process exports the shared queue gauges (README "Metrics"): every replica reads the same
 * queues, so only the holder of this lease reports them and a sum over replicas counts each job
 * once. The holder keeps it by renewing it on each scrape; when it stops, another process takes it
 * over on its first scrape after `ttlMs`.
 */
export function exporterLease(redis: RedisClient, prefix: string, ttlMs = 60_000) {
  const key = `${prefix}:metrics-exporter`;
  const token = randomUUID();
  return {
    async hold(): Promise<boolean> {
      return (await redis.eval(HOLD_OR_TAKE, 1, key, token, String(ttlMs))) === 1;
    },
  };
}
