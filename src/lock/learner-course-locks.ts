import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Cluster } from 'ioredis';
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

const script = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');
const releaseScript = script('release-1.lua');
const renewScript = script('renew-1.lua');
const acquireAllScript = script('acquire-n.lua');
const releaseAllScript = script('release-n.lua');

type WithRelease = RedisClient & {
  releaseLearnerCourseLock(key: string, token: string): Promise<number>;
  renewLearnerCourseLock(key: string, token: string, ttlMs: number): Promise<number>;
  acquireLearnerCourseLocks(...args: Array<string | number>): Promise<number[]>;
  releaseLearnerCourseLocks(...args: Array<string | number>): Promise<number>;
};

/**
 * Per-learner-per-course leases in Redis. They make concurrent jobs wait for each other instead of
 * colliding in Postgres; they are not what keeps the data right (constraints and idempotent writes
 * are), so a lease that expires under a stalled worker costs a retry, not an invariant.
 *
 * A job takes every pair it needs at once: `SET NX PX` on each key, in sorted order, and if any is
 * held it gives back the ones it got. Nobody waits while holding a lease, so two jobs never
 * deadlock. Each key carries its own hash tag, so the scheme works on Redis Cluster.
 *
 * On a single Redis a lease is one script call each way, whatever its size (a course write's chunk
 * locks a thousand pairs: two round trips instead of two thousand commands). On a Cluster, where a
 * script may only touch keys of one slot, each key is set and released by a command of its own.
 */
export class LearnerCourseLocks {
  private readonly redis: WithRelease;
  private readonly oneScriptPerLease: boolean;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly options: { enabled: boolean; ttlMs: number; onBusy?: (pairs: number) => void },
  ) {
    if (!('releaseLearnerCourseLock' in redis)) {
      redis.defineCommand('releaseLearnerCourseLock', { numberOfKeys: 1, lua: releaseScript });
      redis.defineCommand('renewLearnerCourseLock', { numberOfKeys: 1, lua: renewScript });
      // Any number of keys: the key count goes first in each call.
      redis.defineCommand('acquireLearnerCourseLocks', { lua: acquireAllScript });
      redis.defineCommand('releaseLearnerCourseLocks', { lua: releaseAllScript });
    }
    this.redis = redis as WithRelease;
    this.oneScriptPerLease = !(redis instanceof Cluster);
  }

  keyFor(pair: LearnerCourse): string {
    const tag = [pair.organizationKey, pair.studentKeyLower, pair.courseKey].map(encodeURIComponent).join('|');
    // The pair is the hash tag; braces of a cluster queue prefix (`{bull}`) would take its place
    // and put every lock in one slot.
    return `${this.prefix.replace(/[{}]/g, '')}:lock:{${tag}}`;
  }

  /** Takes all the pairs or none; `null` means another job holds at least one of them. */
  async acquire(pairs: readonly LearnerCourse[]): Promise<Lease | null> {
    const { taken, lease } = await this.acquireEach([pairs]);
    return taken[0] ? lease : null;
  }

  /**
   * Takes the pairs of each group all or none, every group in one call: a batch of jobs, a group
   * each, where no pair belongs to two groups. Returns which groups were taken, and one lease on
   * the pairs of those.
   */
  async acquireEach(groups: ReadonlyArray<readonly LearnerCourse[]>): Promise<{ taken: boolean[]; lease: Lease }> {
    if (!this.options.enabled) return { taken: groups.map(() => true), lease: { keys: [], release: async () => {} } };
    const keysOf = groups.map((pairs) => [...new Set(pairs.map((p) => this.keyFor(p)))].sort());
    const token = randomUUID();
    let busy: number[];
    let held: string[];
    if (this.oneScriptPerLease) {
      const all = keysOf.flat();
      busy = all.length
        ? await this.redis.acquireLearnerCourseLocks(
            all.length,
            ...all,
            token,
            this.options.ttlMs,
            ...keysOf.map((k) => k.length),
          )
        : keysOf.map(() => 0);
      held = keysOf.flatMap((keys, g) => (busy[g] === 0 ? keys : []));
    } else {
      // Sent together: ioredis writes every command before the first reply comes back.
      const replies = await Promise.all(
        keysOf.map((keys) => Promise.all(keys.map((k) => this.redis.set(k, token, 'PX', this.options.ttlMs, 'NX')))),
      );
      busy = replies.map((r) => r.filter((reply) => reply !== 'OK').length);
      // A group not taken gives back what it got.
      const givenBack = keysOf.flatMap((keys, g) =>
        busy[g]! > 0 ? keys.filter((_, i) => replies[g]![i] === 'OK') : [],
      );
      await Promise.all(givenBack.map((k) => this.redis.releaseLearnerCourseLock(k, token)));
      held = keysOf.flatMap((keys, g) => (busy[g] === 0 ? keys : []));
    }
    for (const b of busy) if (b > 0) this.options.onBusy?.(b);
    const lease =
      held.length === 0
        ? { keys: [], release: async () => {} }
        : this.renewedLease(held, token, async () => {
            if (this.oneScriptPerLease) await this.redis.releaseLearnerCourseLocks(held.length, ...held, token);
            else await Promise.all(held.map((k) => this.redis.releaseLearnerCourseLock(k, token)));
          });
    return { taken: busy.map((b) => b === 0), lease };
  }

  /**
   * The TTL is short so that the leases of a killed process free their pairs within seconds; a
   * living holder renews them while it works, however long its transaction takes.
   */
  private renewedLease(keys: string[], token: string, releaseAll: () => Promise<void>): Lease {
    const renewal = setInterval(
      () => {
        Promise.all(keys.map((k) => this.redis.renewLearnerCourseLock(k, token, this.options.ttlMs))).catch(() => {});
      },
      Math.max(10, Math.floor(this.options.ttlMs / 3)),
    );
    renewal.unref();
    return {
      keys,
      release: async () => {
        clearInterval(renewal);
        await releaseAll();
      },
    };
  }
}
