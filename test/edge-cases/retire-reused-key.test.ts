/**
 * retiring the second person who used a student key in a program. CONTRACT "retire-learner":
 * "a later upload of the old key creates a new waiting PE"; that new learner can get an account and
 * ask to be retired too.
 */
import { describe, expect, it } from 'vitest';
import {
  accountCreated,
  completed,
  newAccount,
  newCourseKey,
  newOrg,
  newProgram,
  RETIRED_KEY,
  token,
  writeCourseEnrollments,
  writeEnrollments,
} from '../support/fixtures.js';
import { useTestService } from '../support/service.js';

const t = useTestService();

describe('retire-learner after the key was reused', () => {
  it('retires a second account whose PE and active seat use a key retired before in the same program', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const key = `reused-${token()}`;

    // First person: enrolled, active in the course, linked, retired.
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [key]);
    const first = newAccount('first');
    expect(
      completed(await accountCreated(t, first, [{ organization_key: o, external_user_key: key }])).linked,
    ).toHaveLength(1);
    expect(completed(await t.run('enrollments', 'retire-learner', { user_id: first.user_id }))).toEqual({ retired: 1 });

    // Second person with the same key: a new waiting PE, an active seat, linked to another account.
    await writeEnrollments(t, p, [key], { action: 'create' });
    await writeCourseEnrollments(t, p, c, [key], { action: 'create' });
    const second = newAccount('second');
    expect(
      completed(await accountCreated(t, second, [{ organization_key: o, external_user_key: key }])).linked,
    ).toHaveLength(1);

    const job = await t.add('enrollments', 'retire-learner', { user_id: second.user_id });
    const done = await t.wait<{ retired: number }>(job, 15_000).catch((err: Error) => err);
    expect(
      done,
      'retire-learner of the second account never finished (retried as a "transient" unique violation)',
    ).not.toBeInstanceOf(Error);
    expect(completed(done as Exclude<typeof done, Error>)).toEqual({ retired: 1 });
    const keys = await t.sql`select student_key from program_enrollments where user_id = ${second.user_id}`;
    expect(keys[0]!.student_key).toMatch(RETIRED_KEY);
  });
});
