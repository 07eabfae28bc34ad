/**
 * write-program-course-enrollments, black-box: CONTRACT.md ("write-program-course-enrollments",
 * "Result of both write jobs", "Payload errors", "History rows", "course-enrollment-changed") and
 * SPEC.md rules 1-8 and 12, with the deliberate differences from Open edX.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type Account,
  agePe,
  announceLearner,
  COURSE,
  COURSE_EXTERNAL,
  COURSE_MODES,
  ceOf,
  cesOf,
  courseEnrollmentChanged,
  dbState,
  enrollCourse,
  enrollCourseOk,
  enrollOk,
  expectHistoryReplaysToState,
  expectResult,
  hasPendingStaff,
  historyOf,
  historyOfJob,
  isCourseStaff,
  learnersWithTwoActiveSeats,
  newProgram,
  type ProgramPayload,
  pceOf,
  pcesOfLearner,
  peAgeSeconds,
  peOf,
  uniqueKey,
  useProgram,
  writeFailsAtOnce,
} from './support/fixtures.js';
import { useTestService } from './support/service.js';

const t = useTestService();
const RETIRED_COURSE = 'course-v1:UoX+OLD100+2020';
const OTHER_COURSE = 'course-v1:UoX+MATH200+2026';
const P = useProgram(t, {
  courses: [
    { course_key: COURSE, external_course_key: COURSE_EXTERNAL, modes: COURSE_MODES },
    { course_key: OTHER_COURSE, external_course_key: 'MATH200', modes: ['audit', 'masters'] },
    { course_key: RETIRED_COURSE, external_course_key: 'OLD100', modes: ['audit', 'masters'] },
  ],
  curricula: [
    { is_active: false, course_keys: [RETIRED_COURSE] },
    { is_active: true, course_keys: [COURSE, OTHER_COURSE] },
  ],
});

/** Waiting PEs in `program` for fresh keys. */
async function waitingLearners(program: ProgramPayload, n: number, label = 'w'): Promise<string[]> {
  const keys = Array.from({ length: n }, () => uniqueKey(label));
  await enrollOk(
    t,
    program.program_uuid,
    keys.map((k) => ({ student_key: k, status: 'enrolled' })),
  );
  return keys;
}

/** A learner whose account is known, with a realized PE in each program. */
async function realizedLearner(programs: ProgramPayload[], label = 'r'): Promise<{ key: string; acc: Account }> {
  const key = uniqueKey(label);
  const acc = await announceLearner(t, key);
  for (const p of programs) {
    await enrollOk(t, p.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    expect((await peOf(t, p.program_uuid, key))!.user_id).toBe(acc.user_id);
  }
  return { key, acc };
}

describe('results and the statuses of course writes', () => {
  it('answers 204 with empty results and counts when no records are sent', async () => {
    const before = await dbState(t);
    expect(await enrollCourseOk(t, P.program_uuid, COURSE, [])).toEqual({ code: 204, results: {}, counts: {} });
    expect(await dbState(t)).toEqual(before);
  });

  it('creates waiting PCEs with the status sent and no course enrollment, 200', async () => {
    const [a, b] = await waitingLearners(P, 2);
    const before = await dbState(t);
    const r = await enrollCourseOk(
      t,
      P.program_uuid,
      COURSE,
      [
        { student_key: a!, status: 'active' },
        { student_key: b!, status: 'inactive' },
      ],
      { action: 'create' },
    );
    expectResult(r, { [a!]: 'active', [b!]: 'inactive' }, 200);
    expect(await pceOf(t, P.program_uuid, a!, COURSE)).toMatchObject({
      status: 'active',
      course_enrollment_id: null,
      course_key: COURSE,
    });
    expect(await pceOf(t, P.program_uuid, b!, COURSE)).toMatchObject({
      status: 'inactive',
      course_enrollment_id: null,
    });
    expect((await dbState(t)).course_enrollments).toBe(before.course_enrollments);
  });

  it('update changes the status of an existing PCE both ways', async () => {
    const [k] = await waitingLearners(P, 1);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'active' }], { action: 'create' });
    expectResult(
      await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'inactive' }], { action: 'update' }),
      { [k!]: 'inactive' },
      200,
    );
    expect((await pceOf(t, P.program_uuid, k!, COURSE))!.status).toBe('inactive');
    expectResult(
      await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'active' }], { action: 'update' }),
      { [k!]: 'active' },
      200,
    );
    expect((await pceOf(t, P.program_uuid, k!, COURSE))!.status).toBe('active');
  });

  it('create on an existing PCE, whatever its status, gives conflict and changes nothing', async () => {
    const [a, b] = await waitingLearners(P, 2);
    await enrollCourseOk(t, P.program_uuid, COURSE, [
      { student_key: a!, status: 'active' },
      { student_key: b!, status: 'inactive' },
    ]);
    const r = await enrollCourseOk(
      t,
      P.program_uuid,
      COURSE,
      [
        { student_key: a!, status: 'inactive' },
        { student_key: b!, status: 'active' },
      ],
      { action: 'create' },
    );
    expectResult(r, { [a!]: 'conflict', [b!]: 'conflict' }, 422);
    expect((await pceOf(t, P.program_uuid, a!, COURSE))!.status).toBe('active');
    expect((await pceOf(t, P.program_uuid, b!, COURSE))!.status).toBe('inactive');
  });

  it('update of a missing PCE (the PE exists) gives not-found and creates nothing', async () => {
    const [k] = await waitingLearners(P, 1);
    const r = await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'active' }], {
      action: 'update',
    });
    expectResult(r, { [k!]: 'not-found' }, 422);
    expect(await pceOf(t, P.program_uuid, k!, COURSE)).toBeUndefined();
  });

  it('a learner without a PE in the program gives not-in-program', async () => {
    const k = uniqueKey();
    for (const action of ['create', 'update', 'create_or_update'] as const) {
      const r = await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k, status: 'active' }], { action });
      expectResult(r, { [k]: 'not-in-program' }, 422);
    }
    expect(await pcesOfLearner(t, k, COURSE)).toEqual([]);
  });

  it('create_or_update creates the missing PCEs and updates the existing ones, 207 with an error', async () => {
    const [old, fresh] = await waitingLearners(P, 2);
    const stranger = uniqueKey();
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: old!, status: 'active' }]);
    const r = await enrollCourseOk(t, P.program_uuid, COURSE, [
      { student_key: old!, status: 'inactive' },
      { student_key: fresh!, status: 'active' },
      { student_key: stranger, status: 'active' },
    ]);
    expect(r).toEqual({
      code: 207,
      results: { [old!]: 'inactive', [fresh!]: 'active', [stranger]: 'not-in-program' },
      counts: { inactive: 1, active: 1, 'not-in-program': 1 },
    });
  });

  it('gives invalid-status for anything but active and inactive, including program statuses', async () => {
    const [a, b, c] = await waitingLearners(P, 3);
    const r = await enrollCourseOk(t, P.program_uuid, COURSE, [
      { student_key: a!, status: 'enrolled' },
      { student_key: b!, status: '' },
      { student_key: c!, status: 'active' },
    ]);
    expectResult(r, { [a!]: 'invalid-status', [b!]: 'invalid-status', [c!]: 'active' }, 207);
    expect(await pceOf(t, P.program_uuid, a!, COURSE)).toBeUndefined();
    expect(await pceOf(t, P.program_uuid, b!, COURSE)).toBeUndefined();
  });

  it('writes each course on its own: a PCE in one course does not make one in another', async () => {
    const [k] = await waitingLearners(P, 1);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'active' }]);
    const r = await enrollCourseOk(t, P.program_uuid, OTHER_COURSE, [{ student_key: k!, status: 'inactive' }], {
      action: 'update',
    });
    expectResult(r, { [k!]: 'not-found' }, 422);
    const r2 = await enrollCourseOk(t, P.program_uuid, OTHER_COURSE, [{ student_key: k!, status: 'active' }], {
      action: 'create',
    });
    expectResult(r2, { [k!]: 'active' }, 200);
    expect((await pceOf(t, P.program_uuid, k!, COURSE))!.status).toBe('active');
  });
});

describe('course keys', () => {
  it("accepts the external course key; the PCE and its history use the course's own key", async () => {
    const [k] = await waitingLearners(P, 1);
    const done = await enrollCourse(t, P.program_uuid, COURSE_EXTERNAL, [{ student_key: k!, status: 'active' }]);
    expect(done.state, done.failedReason).toBe('completed');
    expectResult(done.result, { [k!]: 'active' }, 200);
    const pce = (await pceOf(t, P.program_uuid, k!, COURSE))!;
    expect(pce.course_key).toBe(COURSE);
    const rows = await historyOf(t, 'program_course_enrollment', pce.id);
    expect(rows[0]!.changes.course_key).toEqual([null, COURSE]);
    // The own key and the external key name the same PCE.
    const again = await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'inactive' }], {
      action: 'update',
    });
    expectResult(again, { [k!]: 'inactive' }, 200);
    const [{ n }] =
      (await t.sql`select count(*)::int as n from program_course_enrollments where course_key = ${COURSE_EXTERNAL}`) as any;
    expect(n).toBe(0);
  });

  const failsAtOnce = (data: unknown) => writeFailsAtOnce(t, 'write-program-course-enrollments', data);

  it('a course outside the program fails "course <key> is not in program <uuid>" (key as sent), without retries, writing nothing', async () => {
    const [k] = await waitingLearners(P, 1);
    for (const key of ['course-v1:UoX+NOPE+2026', RETIRED_COURSE, 'OLD100']) {
      const reason = await failsAtOnce({
        program_uuid: P.program_uuid,
        course_key: key,
        action: 'create_or_update',
        enrollments: [{ student_key: k, status: 'active' }],
      });
      expect(reason.startsWith(`course ${key} is not in program ${P.program_uuid}`), reason).toBe(true);
    }
  });

  it('the external key of a course of another program is outside this one', async () => {
    const other = await newProgram(t, {
      courses: [{ course_key: 'course-v1:UoX+ELSE+2026', external_course_key: 'ELSE-1' }],
    });
    const reason = await failsAtOnce({
      program_uuid: P.program_uuid,
      course_key: 'ELSE-1',
      action: 'create',
      enrollments: [{ student_key: uniqueKey(), status: 'active' }],
    });
    expect(reason.startsWith(`course ELSE-1 is not in program ${P.program_uuid}`)).toBe(true);
    expect(other.program_uuid).not.toBe(P.program_uuid);
  });

  it('an unknown program fails "unknown program <uuid>", without retries', async () => {
    const uuid = randomUUID();
    const reason = await failsAtOnce({ program_uuid: uuid, course_key: COURSE, action: 'create', enrollments: [] });
    expect(reason.startsWith(`unknown program ${uuid}`)).toBe(true);
  });

  it('a malformed record fails the job naming each field, writing nothing', async () => {
    const keys = await waitingLearners(P, 2);
    const reason = await failsAtOnce({
      program_uuid: P.program_uuid,
      course_key: COURSE,
      action: 'create',
      enrollments: [
        { student_key: keys[0], status: 'active' },
        { student_key: keys[1], status: 'active', course_staff: 'yes' },
        { student_key: ' ', status: 'active' },
      ],
    });
    expect(reason.startsWith('invalid payload: ')).toBe(true);
    const paths = reason
      .slice('invalid payload: '.length)
      .split('; ')
      .map((p) => p.slice(0, p.indexOf(': ')))
      .sort();
    expect(paths).toEqual(['enrollments.1.course_staff', 'enrollments.2.student_key']);
    for (const k of keys) expect(await pceOf(t, P.program_uuid, k, COURSE)).toBeUndefined();
  });

  it('a missing course_key is an invalid payload naming it', async () => {
    const reason = await failsAtOnce({ program_uuid: P.program_uuid, action: 'create', enrollments: [] });
    expect(reason).toMatch(/^invalid payload: course_key: \S/);
  });
});

describe('keys: case, white space, duplicates', () => {
  it('matches the PE case-insensitively and answers in the spelling sent', async () => {
    const [k] = await waitingLearners(P, 1, 'CamelKey');
    const sent = k!.toLowerCase();
    const r = await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: sent, status: 'active' }]);
    expectResult(r, { [sent]: 'active' }, 200);
    const pce = (await pceOf(t, P.program_uuid, k!, COURSE))!;
    expect(pce.program_enrollment_id).toBe((await peOf(t, P.program_uuid, k!))!.id);
    const up = await enrollCourseOk(
      t,
      P.program_uuid,
      COURSE,
      [{ student_key: k!.toUpperCase(), status: 'inactive' }],
      { action: 'update' },
    );
    expectResult(up, { [k!.toUpperCase()]: 'inactive' }, 200);
    expect(await pcesOfLearner(t, k!, COURSE)).toHaveLength(1);
  });

  it('trims surrounding white space', async () => {
    const [k] = await waitingLearners(P, 1);
    const r = await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: `\t ${k} `, status: 'active' }]);
    expectResult(r, { [k!]: 'active' }, 200);
  });

  it('a key sent twice in any case is duplicated for every spelling sent, none of its records applied', async () => {
    const [dup, ok] = await waitingLearners(P, 2, 'DupK');
    const r = await enrollCourseOk(t, P.program_uuid, COURSE, [
      { student_key: dup!, status: 'active', course_staff: true },
      { student_key: ok!, status: 'active' },
      { student_key: dup!.toLowerCase(), status: 'inactive' },
      { student_key: ` ${dup!} `, status: 'active' },
    ]);
    expect(r).toEqual({
      code: 207,
      results: { [dup!]: 'duplicated', [dup!.toLowerCase()]: 'duplicated', [ok!]: 'active' },
      counts: { duplicated: 2, active: 1 },
    });
    expect(await pceOf(t, P.program_uuid, dup!, COURSE)).toBeUndefined();
  });
});

describe('the one-active-seat rule and the order of checks (SPEC rules 1 and 4)', () => {
  const A = useProgram(t);
  const B = useProgram(t);

  async function activeInA(label = 'seat'): Promise<string> {
    const key = uniqueKey(label);
    await enrollOk(t, A.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    expectResult(await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'active' }]), {
      [key]: 'active',
    });
    return key;
  }

  it('active in another program: conflict, and nothing changes in either program', async () => {
    const k = await activeInA();
    await enrollOk(t, B.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const before = await dbState(t);
    const r = await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: k, status: 'active' }]);
    expectResult(r, { [k]: 'conflict' }, 422);
    expect(await dbState(t)).toEqual(before);
    expect(await pceOf(t, B.program_uuid, k, COURSE)).toBeUndefined();
    expect((await pceOf(t, A.program_uuid, k, COURSE))!.status).toBe('active');
  });

  it('the conflict is answered under the spelling sent, not the stored one', async () => {
    const k = await activeInA('Spelled');
    await enrollOk(t, B.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const sent = k.toUpperCase();
    const r = await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: sent, status: 'active' }]);
    expectResult(r, { [sent]: 'conflict' }, 422);
  });

  it('an existing inactive PCE in this program is not activated while another program holds the seat', async () => {
    const k = uniqueKey();
    await enrollOk(t, A.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    await enrollOk(t, B.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: k, status: 'inactive' }]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: k, status: 'active' }]);
    for (const action of ['update', 'create_or_update'] as const) {
      const r = await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: k, status: 'active' }], { action });
      expectResult(r, { [k]: 'conflict' }, 422);
    }
    expect((await pceOf(t, B.program_uuid, k, COURSE))!.status).toBe('inactive');
  });

  it('cross-program conflict comes before not-in-program and not-found', async () => {
    const noPe = await activeInA();
    const noPce = await activeInA();
    await enrollOk(t, B.program_uuid, [{ student_key: noPce, status: 'enrolled' }]);
    const r1 = await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: noPe, status: 'active' }]);
    expectResult(r1, { [noPe]: 'conflict' }, 422);
    const r2 = await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: noPce, status: 'active' }], {
      action: 'update',
    });
    expectResult(r2, { [noPce]: 'conflict' }, 422);
  });

  it('duplicated comes before the cross-program conflict', async () => {
    const k = await activeInA('DupSeat');
    await enrollOk(t, B.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const r = await enrollCourseOk(t, B.program_uuid, COURSE, [
      { student_key: k, status: 'active' },
      { student_key: k.toLowerCase(), status: 'active' },
    ]);
    expectResult(r, { [k]: 'duplicated', [k.toLowerCase()]: 'duplicated' }, 422);
  });

  it('the conflict applies to active requests only: inactive is written, an invalid status is invalid-status', async () => {
    const k = await activeInA();
    await enrollOk(t, B.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const bad = await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: k, status: 'enrolled' }]);
    expectResult(bad, { [k]: 'invalid-status' }, 422);
    const inactive = await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: k, status: 'inactive' }]);
    expectResult(inactive, { [k]: 'inactive' }, 200);
    expect((await pceOf(t, A.program_uuid, k, COURSE))!.status).toBe('active');
  });

  it('invalid-status comes before not-in-program, not-found and conflict', async () => {
    const noPe = uniqueKey();
    const [noPce, withPce] = await waitingLearners(P, 2);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: withPce!, status: 'active' }]);
    expectResult(
      await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: noPe, status: 'bogus' }], { action: 'update' }),
      { [noPe]: 'invalid-status' },
      422,
    );
    expectResult(
      await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: noPce!, status: 'bogus' }], { action: 'update' }),
      { [noPce!]: 'invalid-status' },
      422,
    );
    expectResult(
      await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: withPce!, status: 'bogus' }], {
        action: 'create',
      }),
      { [withPce!]: 'invalid-status' },
      422,
    );
  });

  it('not-in-program comes before not-found', async () => {
    const k = uniqueKey();
    expectResult(
      await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k, status: 'inactive' }], { action: 'update' }),
      { [k]: 'not-in-program' },
      422,
    );
  });

  it("re-activating the program's own active PCE is not a conflict", async () => {
    const k = await activeInA();
    const r = await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: k, status: 'active' }], {
      action: 'update',
    });
    expectResult(r, { [k]: 'active' }, 200);
  });

  it('an inactive PCE in another program is no conflict', async () => {
    const k = await activeInA();
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: k, status: 'inactive' }]);
    await enrollOk(t, B.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    expectResult(
      await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: k, status: 'active' }]),
      { [k]: 'active' },
      200,
    );
  });

  it('the same key in another organization is another person: no conflict', async () => {
    const k = await activeInA();
    const elsewhere = await newProgram(t, { org: 'OtherU' });
    await enrollOk(t, elsewhere.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const r = await enrollCourseOk(t, elsewhere.program_uuid, COURSE, [{ student_key: k, status: 'active' }]);
    expectResult(r, { [k]: 'active' }, 200);
    expect((await pceOf(t, A.program_uuid, k, COURSE))!.status).toBe('active');
  });

  it('the seat is per course: active in another course of another program is no conflict', async () => {
    const k = await activeInA();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    expectResult(
      await enrollCourseOk(t, P.program_uuid, OTHER_COURSE, [{ student_key: k, status: 'active' }]),
      { [k]: 'active' },
      200,
    );
  });

  it('Postgres holds at most one active PCE per learner and course', async () => {
    expect(await learnersWithTwoActiveSeats(t)).toBe(0);
  });
});

describe('course enrollments of realized learners (SPEC rule 6)', () => {
  it('an active PCE gives an active masters CE that the PCE points at', async () => {
    const { key, acc } = await realizedLearner([P]);
    const r = await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }], {
      action: 'create',
    });
    expectResult(r, { [key]: 'active' }, 200);
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    expect(ce).toMatchObject({ mode: 'masters', is_active: true, course_key: COURSE });
    expect((await pceOf(t, P.program_uuid, key, COURSE))!.course_enrollment_id).toBe(ce.id);
  });

  it('an inactive PCE gives an inactive masters CE', async () => {
    const { key, acc } = await realizedLearner([P]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }], { action: 'create' });
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    expect(ce).toMatchObject({ mode: 'masters', is_active: false });
    expect((await pceOf(t, P.program_uuid, key, COURSE))!.course_enrollment_id).toBe(ce.id);
  });

  for (const mode of ['audit', 'honor']) {
    it(`an active ${mode} CE is converted to masters (same row)`, async () => {
      const { key, acc } = await realizedLearner([P]);
      await courseEnrollmentChanged(t, { user_id: acc.user_id, course_key: COURSE, mode, is_active: true });
      const before = (await ceOf(t, acc.user_id, COURSE))!;
      expect(before).toMatchObject({ mode, is_active: true });
      await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
      const after = (await ceOf(t, acc.user_id, COURSE))!;
      expect(after).toEqual({ ...before, mode: 'masters', is_active: true });
      expect((await pceOf(t, P.program_uuid, key, COURSE))!.course_enrollment_id).toBe(before.id);
    });
  }

  it('an active verified CE keeps its mode and stays active', async () => {
    const { key, acc } = await realizedLearner([P]);
    await courseEnrollmentChanged(t, { user_id: acc.user_id, course_key: COURSE, mode: 'verified', is_active: true });
    const before = (await ceOf(t, acc.user_id, COURSE))!;
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual(before);
    expect((await pceOf(t, P.program_uuid, key, COURSE))!.course_enrollment_id).toBe(before.id);
  });

  it('an active verified CE is left as it was by a new inactive PCE', async () => {
    const { key, acc } = await realizedLearner([P]);
    await courseEnrollmentChanged(t, { user_id: acc.user_id, course_key: COURSE, mode: 'verified', is_active: true });
    const before = (await ceOf(t, acc.user_id, COURSE))!;
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }]);
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...before, mode: 'verified', is_active: true });
    expect((await pceOf(t, P.program_uuid, key, COURSE))!).toMatchObject({
      status: 'inactive',
      course_enrollment_id: before.id,
    });
  });

  for (const mode of ['verified', 'audit', 'masters']) {
    it(`an inactive ${mode} CE becomes an active masters CE (same row)`, async () => {
      const { key, acc } = await realizedLearner([P]);
      await courseEnrollmentChanged(t, { user_id: acc.user_id, course_key: COURSE, mode, is_active: false });
      const before = (await ceOf(t, acc.user_id, COURSE))!;
      expect(before).toMatchObject({ mode, is_active: false });
      await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
      expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...before, mode: 'masters', is_active: true });
      expect((await pceOf(t, P.program_uuid, key, COURSE))!.course_enrollment_id).toBe(before.id);
    });
  }

  it("the LMS's word on a CE (course-enrollment-changed) overwrites it but never changes a PCE", async () => {
    const { key, acc } = await realizedLearner([P]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    const done = await t.run('accounts', 'course-enrollment-changed', {
      event_id: randomUUID(),
      user_id: acc.user_id,
      course_key: COURSE,
      mode: 'verified',
      is_active: false,
    });
    expect(done.state, done.failedReason).toBe('completed');
    expect(done.result).toEqual({ course_key: COURSE, mode: 'verified', is_active: false });
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...ce, mode: 'verified', is_active: false });
    expect((await pceOf(t, P.program_uuid, key, COURSE))!).toMatchObject({
      status: 'active',
      course_enrollment_id: ce.id,
    });
  });

  it("another course's CE is not touched", async () => {
    const { key, acc } = await realizedLearner([P]);
    await courseEnrollmentChanged(t, {
      user_id: acc.user_id,
      course_key: OTHER_COURSE,
      mode: 'audit',
      is_active: true,
    });
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    expect(await ceOf(t, acc.user_id, OTHER_COURSE)).toMatchObject({ mode: 'audit', is_active: true });
    expect(await cesOf(t, acc.user_id)).toHaveLength(2);
  });

  it('a status change deactivates and reactivates the CE and never changes its mode (masters)', async () => {
    const { key, acc } = await realizedLearner([P]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }], { action: 'update' });
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...ce, is_active: false });
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }], { action: 'update' });
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...ce, is_active: true });
  });

  it('a status change deactivates and reactivates a verified CE, keeping verified', async () => {
    const { key, acc } = await realizedLearner([P]);
    await courseEnrollmentChanged(t, { user_id: acc.user_id, course_key: COURSE, mode: 'verified', is_active: true });
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    expect(ce).toMatchObject({ mode: 'verified', is_active: true });
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }], { action: 'update' });
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...ce, mode: 'verified', is_active: false });
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }], { action: 'update' });
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...ce, mode: 'verified', is_active: true });
  });

  it('the same course in several jobs and programs never makes a second CE row', async () => {
    const A = await newProgram(t);
    const { key, acc } = await realizedLearner([P, A]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    expect(await cesOf(t, acc.user_id, COURSE)).toHaveLength(1);
  });
});

describe('moving a learner between programs (SPEC rule 2 and the inactive-write fix)', () => {
  const A = useProgram(t);
  const B = useProgram(t);

  it('realized: the same CE row is shared, the old PCE inactive, the new active, the CE active in masters', async () => {
    const { key, acc } = await realizedLearner([A, B]);
    expectResult(
      await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'active' }]),
      { [key]: 'active' },
      200,
    );
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    expect(ce).toMatchObject({ mode: 'masters', is_active: true });
    expectResult(
      await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }], { action: 'update' }),
      { [key]: 'inactive' },
      200,
    );
    expect(await ceOf(t, acc.user_id, COURSE)).toMatchObject({ id: ce.id, is_active: false });
    expectResult(
      await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: key, status: 'active' }], { action: 'create' }),
      { [key]: 'active' },
      200,
    );
    const pces = await pcesOfLearner(t, key, COURSE);
    expect(pces.map((p) => [p.program_uuid, p.status, p.course_enrollment_id])).toEqual([
      [A.program_uuid, 'inactive', ce.id],
      [B.program_uuid, 'active', ce.id],
    ]);
    expect(await cesOf(t, acc.user_id, COURSE)).toEqual([{ ...ce, mode: 'masters', is_active: true }]);
  });

  it('realized, from a verified CE: the move reactivates the same row, in masters', async () => {
    const { key, acc } = await realizedLearner([A, B]);
    await courseEnrollmentChanged(t, { user_id: acc.user_id, course_key: COURSE, mode: 'verified', is_active: true });
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }]);
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    expect(ce).toMatchObject({ mode: 'verified', is_active: false });
    await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    expect(await cesOf(t, acc.user_id, COURSE)).toEqual([{ ...ce, mode: 'masters', is_active: true }]);
  });

  it('waiting: the old PCE inactive, the new active, no CE', async () => {
    const key = uniqueKey();
    await enrollOk(t, A.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    await enrollOk(t, B.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }]);
    expectResult(
      await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: key, status: 'active' }]),
      { [key]: 'active' },
      200,
    );
    expect(
      (await pcesOfLearner(t, key, COURSE)).map((p) => [p.program_uuid, p.status, p.course_enrollment_id]),
    ).toEqual([
      [A.program_uuid, 'inactive', null],
      [B.program_uuid, 'active', null],
    ]);
  });

  it("an inactive write in program B never deactivates the CE that program A's active PCE holds", async () => {
    const { key, acc } = await realizedLearner([A, B]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    expectResult(
      await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }], { action: 'create' }),
      { [key]: 'inactive' },
      200,
    );
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...ce, mode: 'masters', is_active: true });
    const pceB = (await pceOf(t, B.program_uuid, key, COURSE))!;
    expect(pceB.status).toBe('inactive');
    // Written again (a no-op and a create_or_update) it still leaves the CE alone.
    await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }], { action: 'update' });
    await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: key.toUpperCase(), status: 'inactive' }]);
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...ce, mode: 'masters', is_active: true });
    expect((await pceOf(t, A.program_uuid, key, COURSE))!).toMatchObject({
      status: 'active',
      course_enrollment_id: ce.id,
    });
  });

  it("after a move, re-writing the old program's PCE inactive leaves the new program's CE active", async () => {
    const { key, acc } = await realizedLearner([A, B]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }]);
    await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }], { action: 'update' });
    expect(await ceOf(t, acc.user_id, COURSE)).toMatchObject({ mode: 'masters', is_active: true });
  });

  it('deactivating the only active PCE deactivates the shared CE; re-activating the old one brings it back', async () => {
    const { key, acc } = await realizedLearner([A, B]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }]);
    await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    await enrollCourseOk(t, B.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }]);
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...ce, is_active: false });
    expectResult(
      await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'active' }]),
      { [key]: 'active' },
      200,
    );
    expect(await ceOf(t, acc.user_id, COURSE)).toEqual({ ...ce, mode: 'masters', is_active: true });
  });
});

describe('course staff (SPEC rule 8)', () => {
  it("realized: true grants the role on the course's own key, absent leaves it, false revokes it", async () => {
    const { key, acc } = await realizedLearner([P]);
    await enrollCourseOk(t, P.program_uuid, COURSE_EXTERNAL, [
      { student_key: key, status: 'active', course_staff: true },
    ]);
    expect(await isCourseStaff(t, acc.user_id, COURSE)).toBe(true);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }]);
    expect(await isCourseStaff(t, acc.user_id, COURSE)).toBe(true);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'inactive', course_staff: false }]);
    expect(await isCourseStaff(t, acc.user_id, COURSE)).toBe(false);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    expect(await isCourseStaff(t, acc.user_id, COURSE)).toBe(false);
  });

  it('realized: granting twice is harmless and the role is per course', async () => {
    const { key, acc } = await realizedLearner([P]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active', course_staff: true }]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active', course_staff: true }]);
    const rows = await t.sql`select course_key from course_staff_roles where user_id = ${acc.user_id}`;
    expect(rows.map((r) => r.course_key)).toEqual([COURSE]);
  });

  it('waiting: true records a pending role on the PCE, absent leaves it, false drops it', async () => {
    const [k] = await waitingLearners(P, 1);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'active', course_staff: true }]);
    const pce = (await pceOf(t, P.program_uuid, k!, COURSE))!;
    expect(await hasPendingStaff(t, pce.id)).toBe(true);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'inactive' }]);
    expect(await hasPendingStaff(t, pce.id)).toBe(true);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'inactive', course_staff: false }]);
    expect(await hasPendingStaff(t, pce.id)).toBe(false);
  });

  it('an update to the same status still applies course_staff', async () => {
    const { key, acc } = await realizedLearner([P]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active', course_staff: true }], {
      action: 'update',
    });
    expect(await isCourseStaff(t, acc.user_id, COURSE)).toBe(true);
  });

  it('records that end in an error status never touch roles', async () => {
    const A = await newProgram(t);
    const staffer = await realizedLearner([P, A]);
    const plain = await realizedLearner([P, A]);
    // staffer: staff and active in A; plain: active in A, no role.
    await enrollCourseOk(t, A.program_uuid, COURSE, [
      { student_key: staffer.key, status: 'active', course_staff: true },
      { student_key: plain.key, status: 'active' },
    ]);
    expect(await isCourseStaff(t, staffer.acc.user_id, COURSE)).toBe(true);
    const strangerKey = uniqueKey();
    const stranger = await announceLearner(t, strangerKey);
    const [waitingKey] = await waitingLearners(P, 1);
    const dupKey = (await realizedLearner([P])).key;
    const r = await enrollCourseOk(t, P.program_uuid, COURSE, [
      { student_key: plain.key, status: 'active', course_staff: true }, // cross-program conflict
      { student_key: staffer.key, status: 'active', course_staff: false }, // cross-program conflict
      { student_key: dupKey, status: 'active', course_staff: true },
      { student_key: dupKey.toUpperCase(), status: 'active', course_staff: true }, // duplicated
      { student_key: waitingKey!, status: 'enrolled', course_staff: true }, // invalid-status
    ]);
    expect(r.results).toEqual({
      [plain.key]: 'conflict',
      [staffer.key]: 'conflict',
      [dupKey]: 'duplicated',
      [dupKey.toUpperCase()]: 'duplicated',
      [waitingKey!]: 'invalid-status',
    });
    expect(await isCourseStaff(t, plain.acc.user_id, COURSE)).toBe(false);
    expect(await isCourseStaff(t, staffer.acc.user_id, COURSE)).toBe(true);
    const dupAcc = (await peOf(t, P.program_uuid, dupKey))!.user_id!;
    expect(await isCourseStaff(t, dupAcc, COURSE)).toBe(false);
    // create on an existing PCE (conflict), update of a missing PCE (not-found), no PE (not-in-program)
    const r2 = await enrollCourseOk(
      t,
      A.program_uuid,
      COURSE,
      [{ student_key: staffer.key, status: 'active', course_staff: false }],
      { action: 'create' },
    );
    expectResult(r2, { [staffer.key]: 'conflict' }, 422);
    expect(await isCourseStaff(t, staffer.acc.user_id, COURSE)).toBe(true);
    const [w2] = await waitingLearners(P, 1);
    const r3 = await enrollCourseOk(
      t,
      P.program_uuid,
      COURSE,
      [{ student_key: w2!, status: 'active', course_staff: true }],
      { action: 'update' },
    );
    expectResult(r3, { [w2!]: 'not-found' }, 422);
    const r4 = await enrollCourseOk(t, P.program_uuid, COURSE, [
      { student_key: strangerKey, status: 'active', course_staff: true },
    ]);
    expectResult(r4, { [strangerKey]: 'not-in-program' }, 422);
    expect(await isCourseStaff(t, stranger.user_id, COURSE)).toBe(false);
    const [{ n }] =
      (await t.sql`select count(*)::int as n from pending_role_assignments pra join program_course_enrollments pce on pce.id = pra.program_course_enrollment_id join program_enrollments pe on pe.id = pce.program_enrollment_id where lower(pe.student_key) in (${waitingKey!.toLowerCase()}, ${w2!.toLowerCase()})`) as any;
    expect(n).toBe(0);
  });

  it("a waiting learner's create conflict leaves the pending role alone", async () => {
    const [k] = await waitingLearners(P, 1);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'active', course_staff: true }]);
    const pce = (await pceOf(t, P.program_uuid, k!, COURSE))!;
    const r = await enrollCourseOk(
      t,
      P.program_uuid,
      COURSE,
      [{ student_key: k!, status: 'active', course_staff: false }],
      { action: 'create' },
    );
    expectResult(r, { [k!]: 'conflict' }, 422);
    expect(await hasPendingStaff(t, pce.id)).toBe(true);
  });
});

describe('history of course writes (SPEC rule 12)', () => {
  it('a waiting PCE: one "created" row with course_key and status, the job id and requested_by', async () => {
    const [k] = await waitingLearners(P, 1);
    const pe = (await peOf(t, P.program_uuid, k!))!;
    const done = await enrollCourse(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'active' }], {
      requested_by: 'registrar:jdoe',
    });
    const pce = (await pceOf(t, P.program_uuid, k!, COURSE))!;
    const rows = await historyOfJob(t, done.job.id!);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      entity: 'program_course_enrollment',
      entity_id: pce.id,
      program_enrollment_id: pe.id,
      action: 'created',
      requested_by: 'registrar:jdoe',
      changes: { course_key: [null, COURSE], status: [null, 'active'] },
    });
    expect(Object.keys(rows[0]!.changes).sort()).toEqual(['course_key', 'status']);
  });

  it('a realized PCE: the PCE row names its CE, and the CE has its own "created" row', async () => {
    const { key, acc } = await realizedLearner([P]);
    const done = await enrollCourse(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    const rows = await historyOfJob(t, done.job.id!);
    const pceRows = rows.filter((r) => r.entity === 'program_course_enrollment');
    const ceRows = rows.filter((r) => r.entity === 'course_enrollment');
    expect(pceRows).toHaveLength(1);
    expect(pceRows[0]).toMatchObject({
      action: 'created',
      requested_by: null,
      changes: { course_key: [null, COURSE], status: [null, 'active'], course_enrollment_id: [null, ce.id] },
    });
    expect(ceRows).toEqual([
      expect.objectContaining({
        entity_id: ce.id,
        action: 'created',
        changes: {
          user_id: [null, acc.user_id],
          course_key: [null, COURSE],
          mode: [null, 'masters'],
          is_active: [null, true],
        },
      }),
    ]);
  });

  it('a status change: "changed" rows for the PCE status and the CE is_active', async () => {
    const { key, acc } = await realizedLearner([P]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    const done = await enrollCourse(t, P.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }], {
      action: 'update',
      requested_by: 'support',
    });
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    const pce = (await pceOf(t, P.program_uuid, key, COURSE))!;
    const rows = await historyOfJob(t, done.job.id!);
    expect(
      rows
        .map((r) => ({
          entity: r.entity,
          entity_id: r.entity_id,
          action: r.action,
          changes: r.changes,
          requested_by: r.requested_by,
        }))
        .sort((a, b) => a.entity.localeCompare(b.entity)),
    ).toEqual([
      {
        entity: 'course_enrollment',
        entity_id: ce.id,
        action: 'changed',
        changes: { is_active: [true, false] },
        requested_by: 'support',
      },
      {
        entity: 'program_course_enrollment',
        entity_id: pce.id,
        action: 'changed',
        changes: { status: ['active', 'inactive'] },
        requested_by: 'support',
      },
    ]);
  });

  it('a mode conversion: a "changed" row for the CE mode', async () => {
    const { key, acc } = await realizedLearner([P]);
    await courseEnrollmentChanged(t, { user_id: acc.user_id, course_key: COURSE, mode: 'audit', is_active: true });
    const done = await enrollCourse(t, P.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    const ceRows = (await historyOfJob(t, done.job.id!)).filter((r) => r.entity === 'course_enrollment');
    expect(ceRows).toEqual([
      expect.objectContaining({ entity_id: ce.id, action: 'changed', changes: { mode: ['audit', 'masters'] } }),
    ]);
  });

  it("a course write that changes nothing adds no row and does not refresh the PE's modification time", async () => {
    const [k] = await waitingLearners(P, 1);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'active' }]);
    const pe = (await peOf(t, P.program_uuid, k!))!;
    await agePe(t, pe.id);
    const done = await enrollCourse(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'active' }]);
    expectResult(done.result, { [k!]: 'active' }, 200);
    expect(await historyOfJob(t, done.job.id!)).toEqual([]);
    expect(await peAgeSeconds(t, pe.id)).toBeGreaterThan(9 * 86400);
  });

  it("a course write that creates or changes a PCE does not refresh the PE's modification time", async () => {
    const [k] = await waitingLearners(P, 1);
    const pe = (await peOf(t, P.program_uuid, k!))!;
    await agePe(t, pe.id);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'active' }]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k!, status: 'inactive' }]);
    expect(await peAgeSeconds(t, pe.id)).toBeGreaterThan(9 * 86400);
    expect(await historyOf(t, 'program_enrollment', pe.id)).toHaveLength(1);
  });

  it('error results write no history', async () => {
    const A = await newProgram(t);
    const { key } = await realizedLearner([P, A]);
    await enrollCourseOk(t, A.program_uuid, COURSE, [{ student_key: key, status: 'active' }]);
    const [w] = await waitingLearners(P, 1);
    const done = await enrollCourse(t, P.program_uuid, COURSE, [
      { student_key: key, status: 'active' },
      { student_key: w!, status: 'bogus' },
      { student_key: uniqueKey(), status: 'active' },
    ]);
    expect(Object.values(done.result.results).sort()).toEqual(['conflict', 'invalid-status', 'not-in-program']);
    expect(await historyOfJob(t, done.job.id!)).toEqual([]);
  });

  it('the history of every row replays to the row as it is now', async () => {
    await expectHistoryReplaysToState(t);
  });
});
