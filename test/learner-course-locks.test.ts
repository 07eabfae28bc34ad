import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type LearnerCourse, LearnerCourseLocks } from '../src/lock/learner-course-locks.js';

const pair = (key: string, course = 'course-v1:UoX+CS101+2026'): LearnerCourse => ({
  organizationKey: 'UoX',
  studentKeyLower: key,
  courseKey: course,
});

describe('learner-course locks on a real Redis', () => {
  let redis: Redis;
  let prefix: string;
  let busy: number[];
  let locks: LearnerCourseLocks;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
    prefix = `l${randomBytes(5).toString('hex')}`;
    busy = [];
    locks = new LearnerCourseLocks(redis, prefix, { enabled: true, ttlMs: 5_000, onBusy: (n) => busy.push(n) });
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  });

  it('takes every pair at once and gives them back', async () => {
    const lease = (await locks.acquire([pair('a'), pair('b'), pair('a')]))!;
    expect(lease.keys).toHaveLength(2);
    for (const key of lease.keys) expect(await redis.pttl(key)).toBeGreaterThan(0);
    await lease.release();
    for (const key of lease.keys) expect(await redis.exists(key)).toBe(0);
  });

  it('takes nothing when one pair is held, and counts the wait', async () => {
    const held = (await locks.acquire([pair('c')]))!;
    expect(await locks.acquire([pair('d'), pair('c'), pair('e')])).toBeNull();
    expect(busy.at(-1)).toBe(1);
    // The pairs it could have taken were given back at once.
    expect(await redis.exists(locks.keyFor(pair('d')), locks.keyFor(pair('e')))).toBe(0);
    await held.release();
    const later = (await locks.acquire([pair('d'), pair('c'), pair('e')]))!;
    expect(later.keys).toHaveLength(3);
    await later.release();
  });

  it('takes several groups in one call, each all or none: a group with a held pair gets nothing, the others go on', async () => {
    const held = (await locks.acquire([pair('m2')]))!;
    const { taken, lease } = await locks.acquireEach([
      [pair('m1'), pair('m1', 'other')],
      [pair('m3'), pair('m2')],
      [],
      [pair('m4')],
    ]);
    expect(taken).toEqual([true, false, true, true]);
    expect(busy.at(-1)).toBe(1);
    expect([...lease.keys].sort()).toEqual(
      [pair('m1'), pair('m1', 'other'), pair('m4')].map((p) => locks.keyFor(p)).sort(),
    );
    // The group not taken gave back what it got; the held pair stays its holder's.
    expect(await redis.exists(locks.keyFor(pair('m3')))).toBe(0);
    const holderToken = await redis.get(locks.keyFor(pair('m2')));
    for (const key of lease.keys) expect(await redis.pttl(key)).toBeGreaterThan(0);
    await lease.release();
    for (const key of lease.keys) expect(await redis.exists(key)).toBe(0);
    expect(await redis.get(locks.keyFor(pair('m2')))).toBe(holderToken);
    await held.release();
  });

  it('releases only its own lock: a lease that expired and was taken by another holder is left alone', async () => {
    const short = new LearnerCourseLocks(redis, prefix, { enabled: true, ttlMs: 50 });
    const first = (await short.acquire([pair('f')]))!;
    // Its holder renews it while alive; a holder that stalls past the TTL loses it: the key goes.
    await redis.del(short.keyFor(pair('f')));
    const second = (await locks.acquire([pair('f')]))!;
    const secondToken = await redis.get(locks.keyFor(pair('f')));
    await first.release();
    expect(await redis.get(locks.keyFor(pair('f')))).toBe(secondToken);
    await second.release();
    expect(await redis.exists(locks.keyFor(pair('f')))).toBe(0);
  });

  it('hash-tags each pair, so a cluster spreads the locks', () => {
    const key = locks.keyFor(pair('Some Key', 'course-v1:UoX+X{1}+2026'));
    expect(key).toMatch(/^[^{}]+:lock:\{[^{}]+\}$/);
    const clustered = new LearnerCourseLocks(redis, '{bull}', { enabled: true, ttlMs: 1_000 });
    expect(clustered.keyFor(pair('a'))).toMatch(/^bull:lock:\{[^{}]+\}$/);
  });

  it('takes and releases a lease of a thousand pairs with one script call each way', async () => {
    const counted = new Redis(inject('redisUrl'));
    const sent: string[] = [];
    const send = counted.sendCommand.bind(counted);
    counted.sendCommand = (command, stream) => {
      sent.push(command.name);
      return send(command, stream);
    };
    try {
      const many = new LearnerCourseLocks(counted, prefix, { enabled: true, ttlMs: 5_000 });
      const pairs = Array.from({ length: 1000 }, (_, i) => pair(`many-${i}`));
      // The first call of a script may be answered NOSCRIPT and sent again with its source.
      await (await many.acquire([pair('warm-up')]))!.release();
      sent.length = 0;
      const lease = (await many.acquire(pairs))!;
      expect(lease.keys).toHaveLength(1000);
      expect(await redis.exists(...lease.keys)).toBe(1000);
      await lease.release();
      expect(await redis.exists(...lease.keys)).toBe(0);
      expect(sent).toEqual(['evalsha', 'evalsha']);
    } finally {
      counted.disconnect();
    }
  });

  it('takes nothing and always succeeds when turned off', async () => {
    const off = new LearnerCourseLocks(redis, prefix, { enabled: false, ttlMs: 1_000 });
    const held = (await locks.acquire([pair('g')]))!;
    const lease = await off.acquire([pair('g')]);
    expect(lease?.keys).toEqual([]);
    await held.release();
  });
});
