/**
 * CONTRACT "Idempotent submission": "after BullMQ has removed it, the service still
 * remembers its result for 7 days, so the new job applies nothing and returns the first result."
 * The write handlers validate the job against the catalog (curriculum, course in program) before
 * they look for the remembered result, so a catalog change in between turns the re-submission into
 * a failed job.
 */
import { describe, expect, it } from 'vitest';
import { COURSE, enrollOk, newProgram, uniqueKey, upsertProgram, type WriteResult } from '../support/fixtures.js';
import { useTestService } from '../support/service.js';

const t = useTestService();

describe('re-submission after the catalog changed', () => {
  it('a course write re-added under its jobId returns the first result after the course left the program', async () => {
    const P = await newProgram(t);
    const key = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    const data = {
      program_uuid: P.program_uuid,
      course_key: COURSE,
      action: 'create',
      enrollments: [{ student_key: key, status: 'active' }],
    };
    const first = await t.run<WriteResult>('enrollments', 'write-program-course-enrollments', data, {
      jobId: `edge-${key}`,
    });
    expect(first.state, first.failedReason).toBe('completed');
    await first.job.remove();

    // The program's curriculum is retired (no active curriculum any more).
    await upsertProgram(t, { ...P, curricula: P.curricula.map((c) => ({ ...c, is_active: false })) });

    const second = await t.run<WriteResult>('enrollments', 'write-program-course-enrollments', data, {
      jobId: `edge-${key}`,
    });
    expect(second.failedReason).toBeUndefined();
    expect(second.result).toEqual(first.result);
  });

  it('a program write re-added under its jobId returns the first result after the program lost its active curriculum', async () => {
    const P = await newProgram(t);
    const key = uniqueKey();
    const data = {
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: [{ student_key: key, status: 'enrolled' }],
    };
    const first = await t.run<WriteResult>('enrollments', 'write-program-enrollments', data, { jobId: `edge-${key}` });
    expect(first.state, first.failedReason).toBe('completed');
    await first.job.remove();

    await upsertProgram(t, { ...P, curricula: P.curricula.map((c) => ({ ...c, is_active: false })) });

    const second = await t.run<WriteResult>('enrollments', 'write-program-enrollments', data, { jobId: `edge-${key}` });
    expect(second.failedReason).toBeUndefined();
    expect(second.result).toEqual(first.result);
  });
});
