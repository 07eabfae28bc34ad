import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RedisClient } from '../infra/redis.js';

/** A learner (organization, lower-cased key) in one course. */
export interface LearnerCourse {
  organizationKey: string;
  studentKeyLower: string;
  courseKey: string;
}

export interface Lease {
  readonly keys: readonly string[];
  release(): Promise<void>;
}

const releaseScript = readFileSync(new URL('./release-1.lua', import.meta.url), 'utf8');

type WithRelease = RedisClient & { releaseLearnerCourseLock(key: string, token: string): Promise<number> };

/**
 * Per-learner-per-course leases in Redis. They make concurrent jobs wait for each other instead of
 * colliding in Postgres; they are not what keeps the data right (constraints and idempotent writes
 * are), so a lease that expires under a stalled worker costs a retry, not an invariant.
 *
 * A job takes every pair it needs at once: `SET NX PX` on each key, in sorted order, and if any is
 * held it gives back the ones it got. Nobody waits while holding a lease, so two jobs never
 * deadlock. Each key carries its own hash tag, so the scheme works on Redis Cluster.
 */
export class LearnerCourseLocks {
  private readonly redis: WithRelease;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly options: { enabled: boolean; ttlMs: number; onBusy?: (pairs: number) => void },
  ) {
    if (!('releaseLearnerCourseLock' in redis)) {
      redis.defineCommand('releaseLearnerCourseLock', { numberOfKeys: 1, lua: releaseScript });
    }
    this.redis = redis as WithRelease;
  }

  keyFor(pair: LearnerCourse): string {
    const tag = [pair.organizationKey, pair.studentKeyLower, pair.courseKey].map(encodeURIComponent).join('|');
    // The pair is the hash tag; braces of a cluster queue prefix (`{bull}`) would take its place
    // and put every lock in one slot.
    return `${this.prefix.replace(/[{}]/g, '')}:lock:{${tag}}`;
  }

  /** Takes all the pairs or none; `null` means another job holds at least one of them. */
  async acquire(pairs: readonly LearnerCourse[]): Promise<Lease | null> {
    if (!this.options.enabled || pairs.length === 0) return { keys: [], release: async () => {} };
    const keys = [...new Set(pairs.map((p) => this.keyFor(p)))].sort();
    const token = randomUUID();
    // Sent together: ioredis writes every command before the first reply comes back.
    const replies = await Promise.all(keys.map((k) => this.redis.set(k, token, 'PX', this.options.ttlMs, 'NX')));
    const taken = keys.filter((_, i) => replies[i] === 'OK');
    const lease: Lease = {
      keys: taken,
      release: async () => {
        await Promise.all(taken.map((k) => this.redis.releaseLearnerCourseLock(k, token)));
      },
    };
    if (taken.length === keys.length) return lease;
    await lease.release();
    this.options.onBusy?.(keys.length - taken.length);
    return null;
  }
}
