/**
 * A job's records are validated a slice at a time, yielding to the event loop between slices
 * (src/contract/sliced-parse.ts), so that a bulk job starting does not hold every other job of the
 * process (docs/contract.md, "Fair share"). The outcome must be exactly zod's own on the whole
 * payload: the same data, the same issues in the same order, hence the same failed reason.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { z } from 'zod';
import {
  describeIssues,
  linkProgramEnrollmentsPayload,
  writeProgramCourseEnrollmentsPayload,
  writeProgramCourseEnrollmentsUploadPayload,
  writeProgramEnrollmentsPayload,
} from '../../src/contract/payloads.js';
import { safeParseInSlices } from '../../src/contract/sliced-parse.js';

const schemas: Record<string, z.ZodType> = {
  writeProgramEnrollmentsPayload,
  writeProgramCourseEnrollmentsPayload,
  writeProgramCourseEnrollmentsUploadPayload,
  linkProgramEnrollmentsPayload,
};

const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom('', ' ', '\u200b', 'x\ud800y', 'a\u0000b', 'true', 'false', 'active', '🎓'.repeat(256)),
  fc.string({ maxLength: 6 }),
);
const field = fc.oneof(hostileString, fc.constant(undefined), fc.boolean(), fc.integer(), fc.constant(null));
const record = fc.oneof(
  fc.record(
    {
      student_key: field,
      status: field,
      course_id: field,
      course_staff: field,
      username: field,
      curriculum_uuid: fc.oneof(fc.uuid(), field),
    },
    { requiredKeys: [] },
  ),
  fc.jsonValue(),
);
const payload = fc.record(
  {
    program_uuid: fc.oneof(fc.uuid(), field),
    course_key: field,
    action: fc.oneof(fc.constantFrom('create', 'update', 'create_or_update'), field),
    course_staff_column: fc.oneof(fc.boolean(), field),
    enrollments: fc.oneof(fc.array(record, { maxLength: 12 }), field),
    links: fc.oneof(fc.array(record, { maxLength: 12 }), field),
    requested_by: field,
  },
  { requiredKeys: [] },
);

const outcome = (result: { success: boolean; data?: unknown; issues?: Parameters<typeof describeIssues>[0] }) =>
  result.success ? { data: result.data } : { reason: describeIssues(result.issues ?? []) };

it('gives the data and the failed reason of a whole-payload parse, whatever the payload', async () => {
  await fc.assert(
    fc.asyncProperty(
      payload,
      fc.constantFrom(...Object.keys(schemas)),
      fc.integer({ min: 1, max: 5 }),
      async (data, name, perSlice) => {
        const whole = schemas[name]!.safeParse(data);
        const sliced = await safeParseInSlices(schemas[name]!, data, perSlice);
        expect(outcome(sliced)).toEqual(
          outcome(whole.success ? { success: true, data: whole.data } : { success: false, issues: whole.error.issues }),
        );
      },
    ),
    { numRuns: 2_000 },
  );
});

it('keeps the 100-problem cap and count, and yields to the event loop between slices', async () => {
  const enrollments = Array.from({ length: 10_000 }, (_, i) =>
    i % 3 === 0 ? { student_key: 'x\ud800y', status: 'active' } : { student_key: `s${i}`, status: 'active' },
  );
  const data = { program_uuid: 'not-a-uuid', action: 'create', enrollments, requested_by: 7 };
  let turns = 0;
  const ticking = setInterval(() => turns++, 0);
  const sliced = await safeParseInSlices(writeProgramEnrollmentsPayload, data, 500);
  clearInterval(ticking);
  const whole = writeProgramEnrollmentsPayload.safeParse(data);
  expect(sliced.success).toBe(false);
  expect(whole.success).toBe(false);
  if (sliced.success || whole.success) return;
  const reason = describeIssues(sliced.issues);
  expect(reason).toBe(describeIssues(whole.error.issues));
  expect(reason).toMatch(/^program_uuid: .*; enrollments\.0\.student_key: must be well-formed Unicode/);
  expect(reason).toMatch(/; and 3236 more problems$/);
  expect(turns).toBeGreaterThan(0);

  const tooMany = { ...data, enrollments: new Array(100_001).fill({ student_key: 'a', status: 'active' }) };
  const refused = await safeParseInSlices(writeProgramEnrollmentsPayload, tooMany);
  expect(refused.success ? '' : describeIssues(refused.issues)).toBe(
    describeIssues(writeProgramEnrollmentsPayload.safeParse(tooMany).error?.issues ?? []),
  );
});
