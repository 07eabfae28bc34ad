/**
 * CONTRACT "expire-waiting-enrollments": `expiration_days` is "any non-negative number,
 * fractions allowed". A very large one is valid and simply expires nothing.
 */
import { describe, expect, it } from 'vitest';
import { useTestService } from '../support/service.js';

const t = useTestService();

describe('expire-waiting-enrollments with a very large expiration_days', () => {
  it('completes and removes nothing', async () => {
    const done = await t.run('enrollments', 'expire-waiting-enrollments', { expiration_days: 10_000_000 });
    expect(done.failedReason).toBeUndefined();
    expect(done.result).toEqual({ removed: { program_enrollments: 0, program_course_enrollments: 0 } });
  });
});
