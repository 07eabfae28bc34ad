import { describe, expect, it } from 'vitest';
import {
  announceAccount,
  completed,
  enrollCourseOk,
  enrollOk,
  getPe,
  linkEnrollments,
  newProgram,
  uniqueKey,
} from './support/fixtures.js';
import { useTestService } from './support/service.js';

/**
 * SPEC rule 5: a later write to a waiting PE of a learner whose account is now known links it. An
 * explicit link in one program makes the account known without touching the learner's waiting PE
 * in another program; the next course write there links that PE and realizes its course.
 */
describe('a course write to a waiting PE of a known learner', () => {
  const t = useTestService();

  it('links the PE and realizes the course in masters', async () => {
    const a = await newProgram(t);
    const b = await newProgram(t);
    const key = uniqueKey();
    await enrollOk(t, a.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    await enrollOk(t, b.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    // An account with no identity yet, then the support tool links it in program a.
    const account = await announceAccount(t, []);
    expect(
      completed(await linkEnrollments(t, a.program_uuid, [{ student_key: key, username: account.username }])),
    ).toEqual({ errors: {} });
    expect((await getPe(t, b.program_uuid, key)).user_id).toBeNull();

    await enrollCourseOk(t, b.program_uuid, b.courses[0]!.course_key, [{ student_key: key, status: 'active' }]);

    expect((await getPe(t, b.program_uuid, key)).user_id).toBe(account.user_id);
    const [ce] = await t.sql`
      select ce.mode, ce.is_active from program_course_enrollments pce
      join course_enrollments ce on ce.id = pce.course_enrollment_id
      join program_enrollments pe on pe.id = pce.program_enrollment_id
      where pe.program_uuid = ${b.program_uuid} and ce.user_id = ${account.user_id}`;
    expect(ce).toEqual({ mode: 'masters', is_active: true });
  });
});
