/**
 * The fault suite's sequential model of docs/rules.md (test/faults/model/rules-model.ts), alone:
 * each test is a rule of the document, so that a disagreement with the service in the random
 * workload points at the service or at a rule read wrongly, not at a slip in the model.
 */
import { describe, expect, it } from 'vitest';
import {
  accountCreated,
  emptyState,
  expireWaiting,
  linkProgramEnrollment,
  type ModelState,
  stateLines,
  writeProgramCourseEnrollments,
  writeProgramEnrollments,
} from '../faults/model/rules-model.js';

const P1 = 'p1';
const P2 = 'p2';
const C = 'course-v1:UoX+C+2026';
const modes = ['audit', 'masters'];

function world(): ModelState {
  return emptyState([
    { program_uuid: P1, organization_key: 'UoX', courses: new Map([[C, modes]]) },
    { program_uuid: P2, organization_key: 'UoX', courses: new Map([[C, modes]]) },
  ]);
}
const enroll = (s: ModelState, program: string, key: string, status = 'enrolled') =>
  writeProgramEnrollments(s, {
    program_uuid: program,
    action: 'create_or_update',
    enrollments: [{ student_key: key, status }],
  });
const course = (s: ModelState, program: string, key: string, status: string, course_staff?: boolean) =>
  writeProgramCourseEnrollments(s, {
    program_uuid: program,
    course_key: C,
    action: 'create_or_update',
    enrollments: [{ student_key: key, status, ...(course_staff === undefined ? {} : { course_staff }) }],
  });
const announce = (s: ModelState, key: string, user: number, event_id = `e-${key}-${user}`) =>
  accountCreated(s, {
    event_id,
    user_id: user,
    username: `u${user}`,
    identities: [{ organization_key: 'UoX', external_user_key: key }],
  });

describe('the sequential model of docs/rules.md', () => {
  it('rule 1: one active seat per learner and course; the conflicting record changes nothing', () => {
    const s = world();
    enroll(s, P1, 'a');
    enroll(s, P2, 'a');
    expect(course(s, P1, 'a', 'active').results).toEqual({ a: 'active' });
    expect(course(s, P2, 'a', 'active')).toEqual({ code: 422, results: { a: 'conflict' }, counts: { conflict: 1 } });
    expect(stateLines(s).pces).toEqual([`${P1}|a|${C}|active|-`]);
  });

  it('rule 2: moving between programs reuses the account CE, active in masters', () => {
    const s = world();
    announce(s, 'a', 7);
    enroll(s, P1, 'a');
    enroll(s, P2, 'a');
    course(s, P1, 'a', 'active');
    course(s, P1, 'a', 'inactive');
    expect(stateLines(s).ces).toEqual([`7|${C}|masters|false`]);
    course(s, P2, 'a', 'active');
    expect(stateLines(s).pces).toEqual([`${P1}|a|${C}|inactive|7`, `${P2}|a|${C}|active|7`]);
    expect(stateLines(s).ces).toEqual([`7|${C}|masters|true`]);
  });

  it('rule 3: a key sent twice is duplicated for every spelling and not applied', () => {
    const s = world();
    const r = writeProgramEnrollments(s, {
      program_uuid: P1,
      action: 'create_or_update',
      enrollments: [
        { student_key: 'a', status: 'enrolled' },
        { student_key: 'A', status: 'pending' },
        { student_key: 'b', status: 'bogus' },
      ],
    });
    expect(r.results).toEqual({ a: 'duplicated', A: 'duplicated', b: 'invalid-status' });
    expect(r.code).toBe(422);
    expect(s.pes).toEqual([]);
  });

  it('rules 5, 6, 8, 9: a waiting PE links on account-created, its courses realized and pending roles granted', () => {
    const s = world();
    enroll(s, P1, 'a');
    course(s, P1, 'a', 'inactive', true);
    expect(stateLines(s).pending).toEqual([`${P1}|a|${C}`]);
    expect(announce(s, 'a', 7, 'ev')).toEqual({ linked: [{ program_uuid: P1, student_key: 'a', course_keys: [C] }] });
    // The replay returns the same result and applies nothing.
    expect(announce(s, 'a', 7, 'ev')).toEqual({ linked: [{ program_uuid: P1, student_key: 'a', course_keys: [C] }] });
    expect(announce(s, 'a', 7, 'ev2')).toEqual({ linked: [] });
    const lines = stateLines(s);
    expect(lines.ces).toEqual([`7|${C}|masters|false`]);
    expect(lines.staff).toEqual([`7|${C}`]);
    expect(lines.pending).toEqual([]);
    // Known now: a new PE is created realized.
    enroll(s, P2, 'a');
    expect(stateLines(s).pes).toEqual([`${P1}|a|enrolled|7`, `${P2}|a|enrolled|7`]);
  });

  it('rule 10: relinking unlinks first, the old CE deactivated and moved to audit; errors as the document says', () => {
    const s = world();
    announce(s, 'a', 7);
    announce(s, 'b', 8);
    enroll(s, P1, 'a');
    course(s, P1, 'a', 'active');
    expect(linkProgramEnrollment(s, P1, 'a', 'nobody')).toBe('No user found with username nobody');
    expect(linkProgramEnrollment(s, P1, 'zz', 'u8')).toBe(
      `No program enrollment found for program uuid=${P1} and external student key=zz`,
    );
    expect(linkProgramEnrollment(s, P1, 'a', 'u7')).toBe(
      'Program enrollment with external_student_key=a is already linked to target account username=u7',
    );
    expect(linkProgramEnrollment(s, P1, 'a', 'u8')).toBeNull();
    expect(stateLines(s).ces).toEqual([`7|${C}|audit|false`, `8|${C}|masters|true`]);
    expect(stateLines(s).learners).toEqual(['UoX|a|8', 'UoX|b|8']);
    enroll(s, P1, 'b');
    // b's account already has a's PE in P1: b's PE stays waiting.
    expect(stateLines(s).pes).toEqual([`${P1}|a|enrolled|8`, `${P1}|b|enrolled|-`]);
    expect(linkProgramEnrollment(s, P1, 'b', 'u8')).toBe(
      `User u8 already has a program enrollment in program uuid=${P1}`,
    );
  });

  it('rule 11: expiry removes every waiting PE with its PCEs and pending roles, never a realized one', () => {
    const s = world();
    announce(s, 'a', 7);
    enroll(s, P1, 'a');
    enroll(s, P1, 'b');
    course(s, P1, 'b', 'active', true);
    expect(expireWaiting(s)).toEqual({ removed: { program_enrollments: 1, program_course_enrollments: 1 } });
    expect(stateLines(s).pes).toEqual([`${P1}|a|enrolled|7`]);
    expect(stateLines(s).pending).toEqual([]);
  });

  it('rule 5 with rule 1: a course write links a known learner waiting PE only for a record that is a write', () => {
    const s = world();
    announce(s, 'x', 9);
    enroll(s, P1, 'a');
    enroll(s, P2, 'a');
    course(s, P2, 'a', 'active');
    // The link makes a's account known without touching a's waiting PE in P1.
    expect(linkProgramEnrollment(s, P2, 'a', 'u9')).toBeNull();
    expect(course(s, P1, 'a', 'active').results).toEqual({ a: 'conflict' });
    expect(stateLines(s).pes).toEqual([`${P1}|a|enrolled|-`, `${P2}|a|enrolled|9`]);
    expect(course(s, P1, 'a', 'inactive').results).toEqual({ a: 'inactive' });
    expect(stateLines(s).pes).toEqual([`${P1}|a|enrolled|9`, `${P2}|a|enrolled|9`]);
    expect(stateLines(s).ces).toEqual([`9|${C}|masters|true`]);
  });
});
