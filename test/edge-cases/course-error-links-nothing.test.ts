/**
 * A course write whose record ends in an error changes nothing (docs/rules.md rules 1 and 8), not
 * even the link of the learner's waiting PE that a write would make (rule 5). The learner's account
 * is known through an explicit link in another program, which leaves this program's PE waiting
 * (docs/contract.md "Explicit linking"). Found by the fault suite's sequential model.
 */
import { describe, expect, it } from 'vitest';
import {
  announceAccount,
  cesOf,
  completed,
  enrollCourseOk,
  expectResult,
  linkEnrollments,
  newCourseKey,
  newOrg,
  newProgram,
  peOf,
  uniqueKey,
  writeCourseEnrollments,
  writeEnrollments,
} from '../support/fixtures.js';
import { useTestService } from '../support/service.js';

const t = useTestService();

describe('a course write record that ends in an error', () => {
  it('leaves the learner waiting PE unlinked; the next write to it links it', async () => {
    const org = newOrg();
    const course = newCourseKey(org);
    const p1 = await newProgram(t, { org, courses: [course] });
    const p2 = await newProgram(t, { org, courses: [course] });
    const key = uniqueKey('err');
    await writeEnrollments(t, p1, [key]);
    await writeEnrollments(t, p2, [key]);
    await writeCourseEnrollments(t, p2, course, [key]);
    const account = await announceAccount(t, [{ organization_key: org, external_user_key: uniqueKey('other') }]);
    expect(
      completed(await linkEnrollments(t, p2.program_uuid, [{ student_key: key, username: account.username }])),
    ).toEqual({ errors: {} });
    expect((await peOf(t, p1.program_uuid, key))?.user_id).toBeNull();

    // Active elsewhere: conflict, and the waiting PE in p1 stays as it was.
    expectResult(await enrollCourseOk(t, p1.program_uuid, course, [{ student_key: key, status: 'active' }]), {
      [key]: 'conflict',
    });
    expect((await peOf(t, p1.program_uuid, key))?.user_id).toBeNull();
    // Not a status: the same.
    expectResult(await enrollCourseOk(t, p1.program_uuid, course, [{ student_key: key, status: 'dropped' }]), {
      [key]: 'invalid-status',
    });
    expect((await peOf(t, p1.program_uuid, key))?.user_id).toBeNull();

    // A write links it (rule 5); p2's active PCE keeps the shared CE active (rule 2).
    expectResult(await enrollCourseOk(t, p1.program_uuid, course, [{ student_key: key, status: 'inactive' }]), {
      [key]: 'inactive',
    });
    expect((await peOf(t, p1.program_uuid, key))?.user_id).toBe(account.user_id);
    expect((await cesOf(t, account.user_id, course)).map((c) => [c.mode, c.is_active])).toEqual([['masters', true]]);
  });
});
