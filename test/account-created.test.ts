/**
 * account-created (queue `accounts`): linking waiting program enrollments to a new account.
 * CONTRACT.md "account-created", "course-enrollment-changed", "Account events"; SPEC.md rules 5, 6,
 * 8, 9, 12, 13 and the deliberate differences (learner = organization + key; a link never
 * deactivates a CE that another active PCE holds: Open edX quirks Q5/Q6).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type AccountCreatedResult,
  accountCreated,
  accountCreatedPayload,
  ceById,
  ceOf,
  cesOf,
  codePointSort,
  completed,
  courseEnrollmentChanged,
  getPce,
  getPe,
  historyOf,
  type Linked,
  newAccount,
  newCourseKey,
  newOrg,
  newProgram,
  type ProgramPayload,
  pcesOfPe,
  pendingRoles,
  pesOf,
  shuffled,
  staffRoles,
  tableCounts,
  token,
  type WriteResult,
  writeCourseEnrollments,
  writeEnrollments,
} from './support/fixtures.js';
import { type FinishedJob, useTestService } from './support/service.js';

const t = useTestService();

describe('account-created: what gets linked', () => {
  it('links the waiting PEs of two programs of the organization and not a program of another organization with the same key', async () => {
    const orgA = newOrg();
    const orgB = newOrg('Other');
    const c1 = newCourseKey(orgA);
    const cB = newCourseKey(orgB);
    const p1 = await newProgram(t, { org: orgA, courses: [c1] });
    const p2 = await newProgram(t, { org: orgA, courses: [] });
    const p3 = await newProgram(t, { org: orgB, courses: [cB] });
    const key = `learner-${token()}`;
    for (const p of [p1, p2, p3]) await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p1, c1, [key]);
    await writeCourseEnrollments(t, p3, cB, [key]);
    const account = newAccount();

    const done = await accountCreated(t, account, [{ organization_key: orgA, external_user_key: key }]);

    const expected: Linked[] = codePointSort(
      [
        { program_uuid: p1.program_uuid, student_key: key, course_keys: [c1] },
        { program_uuid: p2.program_uuid, student_key: key, course_keys: [] },
      ],
      (l) => l.program_uuid,
    );
    expect(completed(done)).toEqual({ linked: expected });
    expect((await getPe(t, p1.program_uuid, key)).user_id).toBe(account.user_id);
    expect((await getPe(t, p2.program_uuid, key)).user_id).toBe(account.user_id);
    const other = await getPe(t, p3.program_uuid, key);
    expect(other.user_id).toBeNull();
    expect((await pcesOfPe(t, other.id)).map((p) => p.course_enrollment_id)).toEqual([null]);
    expect(await ceOf(t, account.user_id, cB)).toBeUndefined();
  });

  it('links the other organization only when the event names that identity too', async () => {
    const orgA = newOrg();
    const orgB = newOrg('Other');
    const pA = await newProgram(t, { org: orgA, courses: [] });
    const pB = await newProgram(t, { org: orgB, courses: [] });
    const keyA = `a-${token()}`;
    const keyB = `b-${token()}`;
    await writeEnrollments(t, pA, [keyA]);
    await writeEnrollments(t, pB, [keyB]);
    const account = newAccount();

    const done = await accountCreated(t, account, [
      { organization_key: orgA, external_user_key: keyA },
      { organization_key: orgB, external_user_key: keyB },
    ]);

    expect(completed(done).linked).toEqual(
      codePointSort(
        [
          { program_uuid: pA.program_uuid, student_key: keyA, course_keys: [] },
          { program_uuid: pB.program_uuid, student_key: keyB, course_keys: [] },
        ],
        (l) => l.program_uuid,
      ),
    );
    expect((await getPe(t, pA.program_uuid, keyA)).user_id).toBe(account.user_id);
    expect((await getPe(t, pB.program_uuid, keyB)).user_id).toBe(account.user_id);
  });

  it('sorts linked by program_uuid (code-point order, not creation order) and course_keys within each', async () => {
    const o = newOrg();
    const ca = `course-v1:${o}+A${token()}+2026`;
    const cb = `course-v1:${o}+B${token()}+2026`;
    const cc = `course-v1:${o}+C${token()}+2026`;
    const cd = `course-v1:${o}+D${token()}+2026`;
    // Created in the reverse of their sorted order.
    const high = await newProgram(t, {
      org: o,
      courses: [cc, cb, ca],
      program_uuid: `ffffffff-${token().slice(0, 4)}-4000-8000-${token()}0000`,
    });
    const low = await newProgram(t, {
      org: o,
      courses: [cd],
      program_uuid: `00000000-${token().slice(0, 4)}-4000-8000-${token()}0000`,
    });
    const key = `sort-${token()}`;
    await writeEnrollments(t, high, [key]);
    await writeEnrollments(t, low, [key]);
    for (const c of [cc, ca, cb]) await writeCourseEnrollments(t, high, c, [key]);
    await writeCourseEnrollments(t, low, cd, [key]);

    const done = await accountCreated(t, newAccount(), [{ organization_key: o, external_user_key: key }]);

    expect(completed(done)).toEqual({
      linked: [
        { program_uuid: low.program_uuid, student_key: key, course_keys: [cd] },
        { program_uuid: high.program_uuid, student_key: key, course_keys: [ca, cb, cc] },
      ],
    });
  });

  it('matches keys case-insensitively and reports the key as stored', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p1 = await newProgram(t, { org: o, courses: [c] });
    const p2 = await newProgram(t, { org: o, courses: [] });
    const stored = `MiXeD-Case-${token()}`;
    await writeEnrollments(t, p1, [stored]);
    await writeCourseEnrollments(t, p1, c, [stored.toLowerCase()]);
    await writeEnrollments(t, p2, [stored.toUpperCase()]);
    const account = newAccount();

    const done = await accountCreated(t, account, [{ organization_key: o, external_user_key: stored.toLowerCase() }]);

    expect(completed(done).linked).toEqual(
      codePointSort(
        [
          { program_uuid: p1.program_uuid, student_key: stored, course_keys: [c] },
          { program_uuid: p2.program_uuid, student_key: stored.toUpperCase(), course_keys: [] },
        ],
        (l) => l.program_uuid,
      ),
    );
    const pe1 = await getPe(t, p1.program_uuid, stored);
    expect(pe1).toMatchObject({ student_key: stored, user_id: account.user_id });
    expect((await getPe(t, p2.program_uuid, stored)).user_id).toBe(account.user_id);
    expect((await getPce(t, pe1.id, c)).course_enrollment_id).not.toBeNull();
  });

  it('trims the identity key before matching', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const key = `trim-${token()}`;
    await writeEnrollments(t, p, [key]);
    const account = newAccount();

    const done = await accountCreated(t, account, [
      { organization_key: o, external_user_key: `  ${key.toUpperCase()}\t` },
    ]);

    expect(completed(done).linked).toEqual([{ program_uuid: p.program_uuid, student_key: key, course_keys: [] }]);
    expect((await getPe(t, p.program_uuid, key)).user_id).toBe(account.user_id);
  });

  it('links a waiting PE whatever its program status', async () => {
    const o = newOrg();
    const p1 = await newProgram(t, { org: o, courses: [] });
    const p2 = await newProgram(t, { org: o, courses: [] });
    const key = `status-${token()}`;
    await writeEnrollments(t, p1, [{ student_key: key, status: 'canceled' }]);
    await writeEnrollments(t, p2, [{ student_key: key, status: 'pending' }]);
    const account = newAccount();

    const done = await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]);

    expect(completed(done).linked).toHaveLength(2);
    expect(await getPe(t, p1.program_uuid, key)).toMatchObject({ user_id: account.user_id, status: 'canceled' });
    expect(await getPe(t, p2.program_uuid, key)).toMatchObject({ user_id: account.user_id, status: 'pending' });
  });

  it('leaves waiting the younger of two PEs in one program when both identities of the account are enrolled there', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const older = `older-${token()}`;
    const younger = `younger-${token()}`;
    await writeEnrollments(t, p, [older]);
    await writeEnrollments(t, p, [younger]);
    const account = newAccount();

    const done = await accountCreated(t, account, [
      { organization_key: o, external_user_key: younger },
      { organization_key: o, external_user_key: older },
    ]);

    expect(completed(done)).toEqual({
      linked: [{ program_uuid: p.program_uuid, student_key: older, course_keys: [] }],
    });
    expect((await getPe(t, p.program_uuid, older)).user_id).toBe(account.user_id);
    expect((await getPe(t, p.program_uuid, younger)).user_id).toBeNull();
  });

  it('records an account without identities and links nothing', async () => {
    const account = newAccount();
    const done = await accountCreated(t, account, []);
    expect(completed(done)).toEqual({ linked: [] });
    const rows = await t.sql`select username, email from accounts where user_id = ${account.user_id}`;
    expect(rows).toEqual([{ username: account.username, email: account.email }]);
  });

  it('fails an event whose payload breaks the contract, without retries, naming the field', async () => {
    const done = await t.run(
      'accounts',
      'account-created',
      { event_id: '', user_id: 0, username: '', identities: [{ organization_key: 'UoX', external_user_key: ' ' }] },
      { attempts: 3 },
    );
    expect(done.state).toBe('failed');
    expect(done.failedReason).toMatch(/^invalid payload: /);
    for (const path of ['event_id: ', 'user_id: ', 'username: ', 'identities.0.external_user_key: ']) {
      expect(done.failedReason).toContain(path);
    }
    expect(done.job.attemptsMade).toBe(1);
  });
});

describe('account-created: course enrollments, staff roles and history', () => {
  async function waitingLearner(
    courses: Array<{ status: 'active' | 'inactive'; course_staff?: boolean }>,
    modes?: string[],
  ) {
    const o = newOrg();
    const keys = courses.map(() => newCourseKey(o));
    const program = await newProgram(t, {
      org: o,
      courses: keys.map((course_key) => (modes ? { course_key, modes } : course_key)),
    });
    const key = `learner-${token()}`;
    await writeEnrollments(t, program, [key]);
    for (const [i, c] of courses.entries()) {
      await writeCourseEnrollments(t, program, keys[i]!, [{ student_key: key, ...c }]);
    }
    return { o, program, key, courses: keys };
  }

  it('realizes an active PCE as an active masters CE that the PCE points at', async () => {
    const { o, program, key, courses } = await waitingLearner([{ status: 'active' }]);
    const account = newAccount();

    completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]));

    const pe = await getPe(t, program.program_uuid, key);
    const pce = await getPce(t, pe.id, courses[0]!);
    expect(pce.status).toBe('active');
    expect(pce.course_enrollment_id).not.toBeNull();
    expect(await ceById(t, pce.course_enrollment_id!)).toMatchObject({
      user_id: account.user_id,
      course_key: courses[0],
      mode: 'masters',
      is_active: true,
    });
    expect(await cesOf(t, account.user_id)).toHaveLength(1);
  });

  it('realizes an inactive PCE alone as an inactive masters CE', async () => {
    const { o, program, key, courses } = await waitingLearner([{ status: 'inactive' }]);
    const account = newAccount();

    completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]));

    const pce = await getPce(t, (await getPe(t, program.program_uuid, key)).id, courses[0]!);
    expect(pce).toMatchObject({ status: 'inactive' });
    expect(pce.course_enrollment_id).not.toBeNull();
    expect(await ceById(t, pce.course_enrollment_id!)).toMatchObject({ mode: 'masters', is_active: false });
  });

  it('realizes every PCE of the PE, active and inactive', async () => {
    const { o, program, key, courses } = await waitingLearner([
      { status: 'active' },
      { status: 'inactive' },
      { status: 'active' },
    ]);
    const account = newAccount();

    const done = await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]);

    expect(completed(done).linked).toEqual([
      { program_uuid: program.program_uuid, student_key: key, course_keys: [...courses].sort() },
    ]);
    const ces = await cesOf(t, account.user_id);
    expect(ces.map((c) => [c.course_key, c.mode, c.is_active])).toEqual(
      codePointSort(
        [
          [courses[0]!, 'masters', true],
          [courses[1]!, 'masters', false],
          [courses[2]!, 'masters', true],
        ],
        (r) => r[0] as string,
      ),
    );
    const pces = await pcesOfPe(t, (await getPe(t, program.program_uuid, key)).id);
    for (const pce of pces) expect(ces.find((c) => c.id === pce.course_enrollment_id)?.course_key).toBe(pce.course_key);
  });

  it('turns a pending staff role into a course staff role and removes the pending one', async () => {
    const { o, program, key, courses } = await waitingLearner([
      { status: 'active', course_staff: true },
      { status: 'active' },
    ]);
    const pe = await getPe(t, program.program_uuid, key);
    const staffPce = await getPce(t, pe.id, courses[0]!);
    expect(await pendingRoles(t, staffPce.id)).toBe(1);
    const account = newAccount();

    completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]));

    expect(await staffRoles(t, account.user_id)).toEqual([courses[0]]);
    expect(await pendingRoles(t, staffPce.id)).toBe(0);
  });

  it('grants a pending staff role of an inactive PCE too', async () => {
    const { o, program, key, courses } = await waitingLearner([{ status: 'inactive', course_staff: true }]);
    const pce = await getPce(t, (await getPe(t, program.program_uuid, key)).id, courses[0]!);
    const account = newAccount();

    completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]));

    expect(await staffRoles(t, account.user_id)).toEqual([courses[0]]);
    expect(await pendingRoles(t, pce.id)).toBe(0);
  });

  it('keeps an active verified CE verified and active, and points the PCE at it', async () => {
    const { o, program, key, courses } = await waitingLearner([{ status: 'active' }], ['audit', 'masters', 'verified']);
    const account = newAccount();
    // The LMS reports the purchase before announcing the account.
    await courseEnrollmentChanged(t, {
      user_id: account.user_id,
      course_key: courses[0]!,
      mode: 'verified',
      is_active: true,
    });
    const [before] = await cesOf(t, account.user_id);

    completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]));

    const ces = await cesOf(t, account.user_id);
    expect(ces).toEqual([
      { id: before!.id, user_id: account.user_id, course_key: courses[0], mode: 'verified', is_active: true },
    ]);
    expect((await getPce(t, (await getPe(t, program.program_uuid, key)).id, courses[0]!)).course_enrollment_id).toBe(
      before!.id,
    );
  });

  it('keeps an active verified CE active even for an inactive PCE', async () => {
    const { o, program, key, courses } = await waitingLearner(
      [{ status: 'inactive' }],
      ['audit', 'masters', 'verified'],
    );
    const account = newAccount();
    await courseEnrollmentChanged(t, {
      user_id: account.user_id,
      course_key: courses[0]!,
      mode: 'verified',
      is_active: true,
    });

    completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]));

    const pce = await getPce(t, (await getPe(t, program.program_uuid, key)).id, courses[0]!);
    expect(await ceById(t, pce.course_enrollment_id!)).toMatchObject({ mode: 'verified', is_active: true });
  });

  it('converts an active audit CE to masters', async () => {
    const { o, key, courses } = await waitingLearner([{ status: 'active' }]);
    const account = newAccount();
    await courseEnrollmentChanged(t, {
      user_id: account.user_id,
      course_key: courses[0]!,
      mode: 'audit',
      is_active: true,
    });

    completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]));

    expect(await ceOf(t, account.user_id, courses[0]!)).toMatchObject({ mode: 'masters', is_active: true });
    expect(await cesOf(t, account.user_id)).toHaveLength(1);
  });

  it.each(['audit', 'verified'])(
    'reactivates an inactive %s CE as an active masters CE (the same row)',
    async (mode) => {
      const { o, program, key, courses } = await waitingLearner(
        [{ status: 'active' }],
        ['audit', 'masters', 'verified'],
      );
      const account = newAccount();
      // Announced first, without identities; the CE follows; then the SSO identity arrives.
      expect(completed(await accountCreated(t, account, []))).toEqual({ linked: [] });
      await courseEnrollmentChanged(t, { user_id: account.user_id, course_key: courses[0]!, mode, is_active: false });
      const [before] = await cesOf(t, account.user_id);
      expect(before).toMatchObject({ mode, is_active: false });

      const done = await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]);

      expect(completed(done).linked).toEqual([
        { program_uuid: program.program_uuid, student_key: key, course_keys: courses },
      ]);
      expect(await cesOf(t, account.user_id)).toEqual([{ ...before!, mode: 'masters', is_active: true }]);
      expect((await getPce(t, (await getPe(t, program.program_uuid, key)).id, courses[0]!)).course_enrollment_id).toBe(
        before!.id,
      );
    },
  );

  /**
   * A learner waiting in two programs of one organization that share a course, with a PCE of
   * `older` status in the first program and of `newer` status in the second, then linked.
   */
  async function linkedMover(older: 'active' | 'inactive', newer: 'active' | 'inactive') {
    const o = newOrg();
    const c = newCourseKey(o);
    const p1 = await newProgram(t, { org: o, courses: [c] });
    const p2 = await newProgram(t, { org: o, courses: [c] });
    const key = `mover-${token()}`;
    await writeEnrollments(t, p1, [key]);
    await writeCourseEnrollments(t, p1, c, [{ student_key: key, status: older }]);
    await writeEnrollments(t, p2, [key]);
    await writeCourseEnrollments(t, p2, c, [{ student_key: key, status: newer }]);
    const account = newAccount();
    completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]));
    return { c, p1, p2, key, account };
  }

  it('does not deactivate the CE of an active PCE when linking an older inactive PCE of another program (Q5/Q6)', async () => {
    // Older: P1, PCE inactive (the learner moved out); newer: P2, PCE active.
    const { c, p1, p2, key, account } = await linkedMover('inactive', 'active');

    const ces = await cesOf(t, account.user_id);
    expect(ces.map((x) => [x.course_key, x.mode, x.is_active])).toEqual([[c, 'masters', true]]);
    const pce1 = await getPce(t, (await getPe(t, p1.program_uuid, key)).id, c);
    const pce2 = await getPce(t, (await getPe(t, p2.program_uuid, key)).id, c);
    expect([pce1.status, pce2.status]).toEqual(['inactive', 'active']);
    expect(pce1.course_enrollment_id).toBe(ces[0]!.id);
    expect(pce2.course_enrollment_id).toBe(ces[0]!.id);
  });

  it('does not deactivate the CE when the inactive PCE is the newer one either', async () => {
    const { c, p1, p2, key, account } = await linkedMover('active', 'inactive');

    const ces = await cesOf(t, account.user_id);
    expect(ces.map((x) => [x.mode, x.is_active])).toEqual([['masters', true]]);
    for (const p of [p1, p2]) {
      expect((await getPce(t, (await getPe(t, p.program_uuid, key)).id, c)).course_enrollment_id).toBe(ces[0]!.id);
    }
  });

  it('leaves history rows for the PE, its PCEs and the new CE that name the job', async () => {
    const { o, program, key, courses } = await waitingLearner([{ status: 'active' }]);
    const account = newAccount();

    const done = await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]);
    completed(done);
    const jobId = String(done.job.id);

    const pe = await getPe(t, program.program_uuid, key);
    const pce = await getPce(t, pe.id, courses[0]!);
    const peRows = (await historyOf(t, 'program_enrollment', pe.id)).filter((r) => r.job_id === jobId);
    expect(peRows).toHaveLength(1);
    expect(peRows[0]).toMatchObject({ action: 'changed', program_enrollment_id: pe.id });
    expect(peRows[0]!.changes.user_id).toEqual([null, account.user_id]);
    const pceRows = (await historyOf(t, 'program_course_enrollment', pce.id)).filter((r) => r.job_id === jobId);
    expect(pceRows).toHaveLength(1);
    expect(pceRows[0]!.changes.course_enrollment_id).toEqual([null, pce.course_enrollment_id]);
    const ceRows = (await historyOf(t, 'course_enrollment', pce.course_enrollment_id!)).filter(
      (r) => r.job_id === jobId,
    );
    expect(ceRows.map((r) => r.action)).toEqual(['created']);
    expect(ceRows[0]!.changes).toMatchObject({ mode: [null, 'masters'], is_active: [null, true] });
  });
});

describe("account-created: the account's course enrollments over HTTP", () => {
  it('lists the CEs made by linking, sorted by course_key, with modes, activity and staff roles', async () => {
    const o = newOrg();
    const cA = `course-v1:${o}+A${token()}+2026`;
    const cB = `course-v1:${o}+B${token()}+2026`;
    const cC = `course-v1:${o}+C${token()}+2026`;
    const p = await newProgram(t, {
      org: o,
      courses: [cC, cA, { course_key: cB, modes: ['audit', 'masters', 'verified'] }],
    });
    const key = `http-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, cC, [{ student_key: key, status: 'active', course_staff: true }]);
    await writeCourseEnrollments(t, p, cA, [{ student_key: key, status: 'inactive' }]);
    await writeCourseEnrollments(t, p, cB, [key]);
    const account = newAccount();
    await courseEnrollmentChanged(t, { user_id: account.user_id, course_key: cB, mode: 'verified', is_active: true });

    completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]));

    const res = await t.api(`/api/v1/users/${account.user_id}/course_enrollments`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([
      { course_key: cA, mode: 'masters', is_active: false, course_staff: false },
      { course_key: cB, mode: 'verified', is_active: true, course_staff: false },
      { course_key: cC, mode: 'masters', is_active: true, course_staff: true },
    ]);
  });

  it('answers [] for an announced account without CEs and 404 for an unknown one', async () => {
    const account = newAccount();
    completed(await accountCreated(t, account, []));
    const known = await t.api(`/api/v1/users/${account.user_id}/course_enrollments`);
    expect(known.status).toBe(200);
    expect(await known.json()).toEqual([]);
    const unknown = await t.api(`/api/v1/users/${newAccount().user_id}/course_enrollments`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toHaveProperty('error');
  });
});

describe('account-created: replays', () => {
  it('returns the same result three times for one event_id and applies it once', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const key = `replay-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [{ student_key: key, status: 'active', course_staff: true }]);
    const account = newAccount();
    const event_id = randomUUID();
    const identities = [{ organization_key: o, external_user_key: key }];

    const first = completed(await accountCreated(t, account, identities, event_id));
    expect(first).toEqual({ linked: [{ program_uuid: p.program_uuid, student_key: key, course_keys: [c] }] });
    const counts = await tableCounts(t);
    const ces = await cesOf(t, account.user_id);

    for (let i = 0; i < 2; i++) {
      expect(completed(await accountCreated(t, account, identities, event_id))).toEqual(first);
    }
    expect(await tableCounts(t)).toEqual(counts);
    expect(await cesOf(t, account.user_id)).toEqual(ces);
  });

  it('replays the earlier result and applies nothing even when the replay names more identities', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const key = `replay-${token()}`;
    const key2 = `replay2-${token()}`;
    await writeEnrollments(t, p, [key]);
    const p2 = await newProgram(t, { org: o, courses: [] });
    await writeEnrollments(t, p2, [key2]);
    const account = newAccount();
    const event_id = randomUUID();
    const first = completed(
      await accountCreated(t, account, [{ organization_key: o, external_user_key: key }], event_id),
    );
    expect(first).toEqual({ linked: [{ program_uuid: p.program_uuid, student_key: key, course_keys: [] }] });
    const counts = await tableCounts(t);

    const replay = await accountCreated(
      t,
      account,
      [
        { organization_key: o, external_user_key: key },
        { organization_key: o, external_user_key: key2 },
      ],
      event_id,
    );

    expect(completed(replay)).toEqual(first);
    expect(await tableCounts(t)).toEqual(counts);
    expect((await getPe(t, p2.program_uuid, key2)).user_id).toBeNull();
  });

  it('returns one result for three deliveries of one event running at once, applied once', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const key = `replay-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [key]);
    const account = newAccount();
    const payload = accountCreatedPayload(account, [{ organization_key: o, external_user_key: key }]);
    const before = await tableCounts(t);

    const jobs = await t.queues.accounts.addBulk([0, 1, 2].map(() => ({ name: 'account-created', data: payload })));
    const results = (await Promise.all(jobs.map((j) => t.wait<AccountCreatedResult>(j)))).map((d) => completed(d));

    const expected = { linked: [{ program_uuid: p.program_uuid, student_key: key, course_keys: [c] }] };
    expect(results).toEqual([expected, expected, expected]);
    const after = await tableCounts(t);
    expect(after.course_enrollments! - before.course_enrollments!).toBe(1);
    expect(after.accounts! - before.accounts!).toBe(1);
    // One PE change, one PCE change, one CE creation.
    expect(after.history! - before.history!).toBe(3);
  });

  it('answers { linked: [] } to a new event for identities already linked, changing nothing', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const key = `again-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [key]);
    const account = newAccount();
    const identities = [{ organization_key: o, external_user_key: key }];
    expect(completed(await accountCreated(t, account, identities)).linked).toHaveLength(1);
    const counts = await tableCounts(t);

    expect(completed(await accountCreated(t, account, identities))).toEqual({ linked: [] });
    expect(
      completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key.toUpperCase() }])),
    ).toEqual({ linked: [] });
    expect(await tableCounts(t)).toEqual(counts);
  });
});

describe('account-created: an identity that matches nothing is remembered', () => {
  it('makes a later bulk write create realized PEs and course writes create CEs at once', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const known = Array.from({ length: 3 }, () => ({ key: `Known-${token()}`, account: newAccount() }));
    for (const k of known) {
      expect(
        completed(await accountCreated(t, k.account, [{ organization_key: o, external_user_key: k.key }])),
      ).toEqual({ linked: [] });
    }
    const stranger = `stranger-${token()}`;

    // The upload spells the keys in another case.
    const write = await writeEnrollments(t, p, [...known.map((k) => k.key.toLowerCase()), stranger]);
    expect(write.result.code).toBe(200);
    for (const k of known) {
      const pe = await getPe(t, p.program_uuid, k.key);
      expect(pe.user_id).toBe(k.account.user_id);
      const created = (await historyOf(t, 'program_enrollment', pe.id))[0]!;
      expect(created.action).toBe('created');
      expect(created.changes.user_id).toEqual([null, k.account.user_id]);
      expect(created.job_id).toBe(String(write.job.id));
    }
    expect((await getPe(t, p.program_uuid, stranger)).user_id).toBeNull();

    await writeCourseEnrollments(t, p, c, [
      ...known.map((k) => ({ student_key: k.key, status: 'active', course_staff: true })),
      stranger,
    ]);
    for (const k of known) {
      const pce = await getPce(t, (await getPe(t, p.program_uuid, k.key)).id, c);
      expect(pce.course_enrollment_id).not.toBeNull();
      expect(await ceById(t, pce.course_enrollment_id!)).toMatchObject({
        user_id: k.account.user_id,
        mode: 'masters',
        is_active: true,
      });
      expect(await staffRoles(t, k.account.user_id)).toEqual([c]);
      expect(await pendingRoles(t, pce.id)).toBe(0);
    }
    expect((await getPce(t, (await getPe(t, p.program_uuid, stranger)).id, c)).course_enrollment_id).toBeNull();
  });

  it('remembers the identity only for its organization', async () => {
    const o = newOrg();
    const other = newOrg('Other');
    const pOther = await newProgram(t, { org: other, courses: [] });
    const key = `org-bound-${token()}`;
    completed(await accountCreated(t, newAccount(), [{ organization_key: o, external_user_key: key }]));

    await writeEnrollments(t, pOther, [key]);

    expect((await getPe(t, pOther.program_uuid, key)).user_id).toBeNull();
  });

  it('links, on the next write, a PE that was waiting before the account was announced in another program', async () => {
    // The account links its waiting PEs at once; a PE written afterwards is created realized.
    const o = newOrg();
    const p1 = await newProgram(t, { org: o, courses: [] });
    const p2 = await newProgram(t, { org: o, courses: [] });
    const key = `later-${token()}`;
    await writeEnrollments(t, p1, [key]);
    const account = newAccount();
    expect(
      completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }])).linked,
    ).toHaveLength(1);

    await writeEnrollments(t, p2, [key]);

    expect((await getPe(t, p2.program_uuid, key)).user_id).toBe(account.user_id);
  });
});

describe('account-created: concurrency', () => {
  const LEARNERS = 30;

  interface Round {
    program: ProgramPayload;
    course: string;
    learners: Array<{ key: string; account: ReturnType<typeof newAccount> }>;
  }

  async function newRound(label: string): Promise<Round> {
    const o = newOrg();
    const course = newCourseKey(o);
    const program = await newProgram(t, { org: o, courses: [course] });
    const learners = Array.from({ length: LEARNERS }, (_, i) => ({
      key: `${label}-${i % 2 ? 'Odd' : 'even'}-${i}-${token()}`,
      account: newAccount(label),
    }));
    return { program, course, learners };
  }

  const eventOf = (r: Round, i: number) => async () =>
    t.run<AccountCreatedResult>(
      'accounts',
      'account-created',
      accountCreatedPayload(r.learners[i]!.account, [
        { organization_key: r.program.organization_key, external_user_key: r.learners[i]!.key.toLowerCase() },
      ]),
    );

  /** One learner's writes as the Registrar sends them: the PE, then the course. */
  const writesOf = (r: Round, i: number) => async () => {
    const key = r.learners[i]!.key;
    const pe = await t.run<WriteResult>('enrollments', 'write-program-enrollments', {
      program_uuid: r.program.program_uuid,
      action: 'create_or_update',
      enrollments: [{ student_key: key, status: 'enrolled' }],
    });
    const pce = await t.run<WriteResult>('enrollments', 'write-program-course-enrollments', {
      program_uuid: r.program.program_uuid,
      course_key: r.course,
      action: 'create_or_update',
      enrollments: [{ student_key: key, status: 'active' }],
    });
    return [pe, pce];
  };

  async function expectAllLinked(
    r: Round,
    events: FinishedJob<AccountCreatedResult>[],
    writes: FinishedJob<WriteResult>[],
  ) {
    for (const w of writes) {
      const result = completed(w);
      for (const status of Object.values(result.results)) expect(['enrolled', 'active']).toContain(status);
    }
    for (const [i, e] of events.entries()) {
      const { linked } = completed(e);
      // Whatever the order, an event links this learner's PE or finds it already realized.
      const key = (e.job.data as { identities: { external_user_key: string }[] }).identities[0]!.external_user_key;
      const learner = r.learners.find((l) => l.key.toLowerCase() === key)!;
      expect(linked.length, `event ${i}`).toBeLessThanOrEqual(1);
      for (const l of linked) {
        expect(l.program_uuid).toBe(r.program.program_uuid);
        expect(l.student_key).toBe(learner.key);
        expect([[], [r.course]]).toContainEqual(l.course_keys);
      }
    }
    const pes = await pesOf(t, r.program.program_uuid);
    expect(pes).toHaveLength(LEARNERS);
    for (const learner of r.learners) {
      const pe = pes.find((p) => p.student_key === learner.key)!;
      expect(pe.user_id, `PE of ${learner.key}`).toBe(learner.account.user_id);
      const pces = await pcesOfPe(t, pe.id);
      expect(pces).toHaveLength(1);
      expect(pces[0]!.course_enrollment_id, `PCE of ${learner.key}`).not.toBeNull();
      expect(await ceById(t, pces[0]!.course_enrollment_id!)).toMatchObject({
        user_id: learner.account.user_id,
        course_key: r.course,
        mode: 'masters',
        is_active: true,
      });
      expect(await cesOf(t, learner.account.user_id)).toHaveLength(1);
    }
  }

  async function race(r: Round, flows: Array<() => Promise<FinishedJob<any> | FinishedJob<any>[]>>) {
    const out = (await Promise.all(flows.map((f) => f()))).flat();
    const events = out.filter((d) => d.job.name === 'account-created') as FinishedJob<AccountCreatedResult>[];
    const writes = out.filter((d) => d.job.name !== 'account-created') as FinishedJob<WriteResult>[];
    expect(events).toHaveLength(LEARNERS);
    await expectAllLinked(r, events, writes);
  }

  it('links every learner when 30 events are added just before the writes that create their PEs', async () => {
    const r = await newRound('events-first');
    const idx = [...Array(LEARNERS).keys()];
    await race(r, [...idx.map((i) => eventOf(r, i)), ...idx.map((i) => writesOf(r, i))]);
  });

  it('links every learner when 30 events are added just after the writes that create their PEs', async () => {
    const r = await newRound('writes-first');
    const idx = [...Array(LEARNERS).keys()];
    await race(r, [...idx.map((i) => writesOf(r, i)), ...idx.map((i) => eventOf(r, i))]);
  });

  it('links every learner when events and writes alternate', async () => {
    const r = await newRound('alternate');
    const idx = [...Array(LEARNERS).keys()];
    await race(
      r,
      idx.flatMap((i) => (i % 2 ? [eventOf(r, i), writesOf(r, i)] : [writesOf(r, i), eventOf(r, i)])),
    );
  });

  it.each([1, 2, 3])('links every learner in a shuffled interleaving (seed %i)', async (seed) => {
    const r = await newRound(`shuffle${seed}`);
    const idx = [...Array(LEARNERS).keys()];
    await race(r, shuffled([...idx.map((i) => eventOf(r, i)), ...idx.map((i) => writesOf(r, i))], seed * 7919));
  });

  it.each([
    ['before', 30],
    ['around', 15],
    ['after', 0],
  ] as const)(
    'links every learner when the 30 events race one bulk write of all 30 PEs and then their courses (events %s)',
    async (where, split) => {
      const r = await newRound(`bulk-${where}`);
      const idx = [...Array(LEARNERS).keys()];
      const bulk = async () => {
        const pe = await t.run<WriteResult>('enrollments', 'write-program-enrollments', {
          program_uuid: r.program.program_uuid,
          action: 'create',
          enrollments: r.learners.map((l) => ({ student_key: l.key, status: 'enrolled' })),
        });
        const pce = await t.run<WriteResult>('enrollments', 'write-program-course-enrollments', {
          program_uuid: r.program.program_uuid,
          course_key: r.course,
          action: 'create',
          enrollments: r.learners.map((l) => ({ student_key: l.key, status: 'active' })),
        });
        return [pe, pce];
      };
      const events = shuffled(idx, 4242 + split).map((i) => eventOf(r, i));
      await race(r, [...events.slice(0, split), bulk, ...events.slice(split)]);
    },
  );

  it('links every learner when a second process shares the work', async () => {
    await t.startPeer();
    const r = await newRound('two-procs');
    const idx = [...Array(LEARNERS).keys()];
    await race(r, shuffled([...idx.map((i) => eventOf(r, i)), ...idx.map((i) => writesOf(r, i))], 31337));
  });

  it('links 50 distinct learners whose events are processed concurrently', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const learners = Array.from({ length: 50 }, (_, i) => ({
      key: `fifty-${i}-${token()}`,
      account: newAccount('fifty'),
    }));
    await writeEnrollments(
      t,
      p,
      learners.map((l) => l.key),
    );
    await writeCourseEnrollments(
      t,
      p,
      c,
      learners.map((l) => ({ student_key: l.key, status: 'active', course_staff: l.key.startsWith('fifty-1') })),
    );

    const jobs = await t.queues.accounts.addBulk(
      learners.map((l) => ({
        name: 'account-created',
        data: accountCreatedPayload(l.account, [{ organization_key: o, external_user_key: l.key }]),
      })),
    );
    const done = await Promise.all(jobs.map((j) => t.wait<AccountCreatedResult>(j)));

    for (const [i, d] of done.entries()) {
      expect(completed(d)).toEqual({
        linked: [{ program_uuid: p.program_uuid, student_key: learners[i]!.key, course_keys: [c] }],
      });
    }
    for (const l of learners) {
      const pe = await getPe(t, p.program_uuid, l.key);
      expect(pe.user_id).toBe(l.account.user_id);
      const pce = await getPce(t, pe.id, c);
      expect(await ceById(t, pce.course_enrollment_id!)).toMatchObject({
        user_id: l.account.user_id,
        mode: 'masters',
        is_active: true,
      });
      expect(await staffRoles(t, l.account.user_id)).toEqual(l.key.startsWith('fifty-1') ? [c] : []);
      expect(await pendingRoles(t, pce.id)).toBe(0);
    }
  });
});
