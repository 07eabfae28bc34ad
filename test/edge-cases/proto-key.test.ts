/**
 * CONTRACT "results has one entry per distinct trimmed student_key spelling that was sent".
 * Results are built in plain objects, where the key `__proto__` is the prototype, not an entry.
 */
import { describe, expect, it } from 'vitest';
import { enrollOk, peOf, uniqueKey, useProgram } from '../support/fixtures.js';
import { useTestService } from '../support/service.js';

const t = useTestService();
const P = useProgram(t);

describe('a student key that is also a JavaScript object property', () => {
  it('has its own entry in results and counts', async () => {
    const other = uniqueKey();
    const result = await enrollOk(t, P.program_uuid, [
      { student_key: '__proto__', status: 'enrolled' },
      { student_key: other, status: 'enrolled' },
    ]);
    expect(await peOf(t, P.program_uuid, '__proto__')).toBeDefined();
    expect(Object.keys(result.results).sort()).toEqual(['__proto__', other].sort());
    expect(result.counts).toEqual({ enrolled: 2 });
  });
});
