/**
 * write-program-enrollments, black-box: CONTRACT.md ("write-program-enrollments", "Result of both
 * write jobs", "Payload errors", "History rows", "No active curriculum") and SPEC.md rules 3, 4, 5,
 * 7, 11, 12.
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  agePe,
  announceAccount,
  announceLearner,
  COURSE,
  ceOf,
  dbState,
  enroll,
  enrollCourseOk,
  enrollOk,
  expectHistoryReplaysToState,
  expectResult,
  historyOf,
  historyOfJob,
  newProgram,
  ORG,
  pceOf,
  peAgeSeconds,
  peOf,
  pesOf,
  uniqueKey,
  upsertProgram,
  useProgram,
  writeFailsAtOnce,
} from './support/fixtures.js';
import { useTestService } from './support/service.js';

const t = useTestService();
/** Curricula: [inactive, active (the default), active]. */
const P = useProgram(t, {
  curricula: [
    { is_active: false, course_keys: [COURSE] },
    { is_active: true, course_keys: [COURSE] },
    { is_active: true, course_keys: [COURSE] },
  ],
});
const [inactiveCurriculum, defaultCurriculum, secondCurriculum] = P.curricula.map((c) => c.curriculum_uuid) as [
  string,
  string,
  string,
];

describe('results, counts and code', () => {
  it('answers 204 with empty results and counts when no records are sent', async () => {
    const before = await dbState(t);
    const r = await enrollOk(t, P.program_uuid, []);
    expect(r).toEqual({ code: 204, results: {}, counts: {} });
    expect(await dbState(t)).toEqual(before);
  });

  it('creates waiting PEs with the status sent in the default curriculum, 200 when every result is a status', async () => {
    const [a, b, c] = [uniqueKey(), uniqueKey(), uniqueKey()];
    const r = await enrollOk(
      t,
      P.program_uuid,
      [
        { student_key: a, status: 'enrolled' },
        { student_key: b, status: 'pending' },
        { student_key: c, status: 'suspended' },
      ],
      { action: 'create' },
    );
    expectResult(r, { [a]: 'enrolled', [b]: 'pending', [c]: 'suspended' }, 200);
    expect(r.counts).toEqual({ enrolled: 1, pending: 1, suspended: 1 });
    for (const [key, status] of [
      [a, 'enrolled'],
      [b, 'pending'],
      [c, 'suspended'],
    ] as const) {
      const pe = await peOf(t, P.program_uuid, key);
      expect(pe).toMatchObject({
        student_key: key,
        status,
        user_id: null,
        curriculum_uuid: defaultCurriculum,
        organization_key: ORG,
      });
    }
  });

  it('accepts each of the five program statuses', async () => {
    const statuses = ['enrolled', 'pending', 'suspended', 'canceled', 'ended'];
    const keys = statuses.map(() => uniqueKey());
    const r = await enrollOk(
      t,
      P.program_uuid,
      keys.map((k, i) => ({ student_key: k, status: statuses[i]! })),
    );
    expectResult(r, Object.fromEntries(keys.map((k, i) => [k, statuses[i]!])), 200);
    expect((await Promise.all(keys.map((k) => peOf(t, P.program_uuid, k)))).map((p) => p!.status)).toEqual(statuses);
  });

  it('counts each result value that occurs and no others, 207 when statuses and errors mix', async () => {
    const [a, b, c, d, e] = [uniqueKey(), uniqueKey(), uniqueKey(), uniqueKey(), uniqueKey()];
    await enrollOk(t, P.program_uuid, [{ student_key: d, status: 'enrolled' }]);
    const r = await enrollOk(
      t,
      P.program_uuid,
      [
        { student_key: a, status: 'enrolled' },
        { student_key: b, status: 'enrolled' },
        { student_key: c, status: 'bogus' },
        { student_key: d, status: 'pending' },
        { student_key: e, status: 'ended' },
        { student_key: e.toUpperCase(), status: 'ended' },
      ],
      { action: 'create' },
    );
    expect(r).toEqual({
      code: 207,
      results: {
        [a]: 'enrolled',
        [b]: 'enrolled',
        [c]: 'invalid-status',
        [d]: 'conflict',
        [e]: 'duplicated',
        [e.toUpperCase()]: 'duplicated',
      },
      counts: { enrolled: 2, 'invalid-status': 1, conflict: 1, duplicated: 2 },
    });
  });

  it('answers 422 when no result is a status', async () => {
    const existing = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: existing, status: 'enrolled' }]);
    const r = await enrollOk(
      t,
      P.program_uuid,
      [
        { student_key: existing, status: 'pending' },
        { student_key: uniqueKey(), status: 'withdrawn' },
      ],
      { action: 'create' },
    );
    expect(r.code).toBe(422);
    expect(Object.values(r.results).sort()).toEqual(['conflict', 'invalid-status']);
    expect(r.counts).toEqual({ conflict: 1, 'invalid-status': 1 });
  });
});

describe('create, update, create_or_update', () => {
  it('create on an existing PE gives conflict and leaves it unchanged', async () => {
    const k = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'create' });
    const before = await peOf(t, P.program_uuid, k);
    const r = await enrollOk(
      t,
      P.program_uuid,
      [{ student_key: k, status: 'canceled', curriculum_uuid: secondCurriculum }],
      { action: 'create' },
    );
    expectResult(r, { [k]: 'conflict' }, 422);
    expect(await peOf(t, P.program_uuid, k)).toEqual(before);
  });

  it('update changes the status of an existing PE, from any status to any status', async () => {
    const k = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'create' });
    for (const status of ['canceled', 'enrolled', 'ended', 'pending', 'suspended', 'enrolled']) {
      const r = await enrollOk(t, P.program_uuid, [{ student_key: k, status }], { action: 'update' });
      expectResult(r, { [k]: status }, 200);
      expect((await peOf(t, P.program_uuid, k))!.status).toBe(status);
    }
  });

  it('update of a missing PE gives not-in-program and creates nothing', async () => {
    const k = uniqueKey();
    const before = await dbState(t);
    const r = await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'update' });
    expectResult(r, { [k]: 'not-in-program' }, 422);
    expect(await peOf(t, P.program_uuid, k)).toBeUndefined();
    expect(await dbState(t)).toEqual(before);
  });

  it('create_or_update creates the missing PEs and updates the existing ones in one job', async () => {
    const [old, fresh] = [uniqueKey(), uniqueKey()];
    await enrollOk(t, P.program_uuid, [{ student_key: old, status: 'pending' }], { action: 'create' });
    const r = await enrollOk(
      t,
      P.program_uuid,
      [
        { student_key: old, status: 'enrolled' },
        { student_key: fresh, status: 'pending' },
      ],
      { action: 'create_or_update' },
    );
    expectResult(r, { [old]: 'enrolled', [fresh]: 'pending' }, 200);
    expect((await peOf(t, P.program_uuid, old))!.status).toBe('enrolled');
    expect((await peOf(t, P.program_uuid, fresh))!.status).toBe('pending');
  });

  it("a PE in another program is not this program's PE", async () => {
    const other = await newProgram(t);
    const k = uniqueKey();
    await enrollOk(t, other.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const upd = await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'update' });
    expectResult(upd, { [k]: 'not-in-program' }, 422);
    const created = await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'pending' }], { action: 'create' });
    expectResult(created, { [k]: 'pending' }, 200);
    expect((await peOf(t, other.program_uuid, k))!.status).toBe('enrolled');
  });
});

describe('invalid-status and the order of checks', () => {
  it('gives invalid-status for a status outside the vocabulary, for that learner only', async () => {
    const [a, b, c, ok] = [uniqueKey(), uniqueKey(), uniqueKey(), uniqueKey()];
    const before = await dbState(t);
    const r = await enrollOk(t, P.program_uuid, [
      { student_key: a, status: 'withdrawn' },
      { student_key: b, status: '' },
      { student_key: c, status: 'active' },
      { student_key: ok, status: 'enrolled' },
    ]);
    expectResult(r, { [a]: 'invalid-status', [b]: 'invalid-status', [c]: 'invalid-status', [ok]: 'enrolled' }, 207);
    for (const k of [a, b, c]) expect(await peOf(t, P.program_uuid, k)).toBeUndefined();
    expect((await dbState(t)).program_enrollments).toBe(before.program_enrollments! + 1);
  });

  it('an invalid status leaves an existing PE unchanged', async () => {
    const k = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const r = await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'withdrawn' }], { action: 'update' });
    expectResult(r, { [k]: 'invalid-status' }, 422);
    expect((await peOf(t, P.program_uuid, k))!.status).toBe('enrolled');
  });

  it('invalid-status comes before conflict (create on an existing PE)', async () => {
    const k = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const r = await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'bogus' }], { action: 'create' });
    expectResult(r, { [k]: 'invalid-status' }, 422);
  });

  it('invalid-status comes before not-in-program (update of a missing PE)', async () => {
    const k = uniqueKey();
    const r = await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'bogus' }], { action: 'update' });
    expectResult(r, { [k]: 'invalid-status' }, 422);
  });

  it('duplicated comes before invalid-status, conflict and not-in-program', async () => {
    const [bad, existing, missing] = [uniqueKey('Bad'), uniqueKey('Existing'), uniqueKey('Missing')];
    await enrollOk(t, P.program_uuid, [{ student_key: existing, status: 'enrolled' }]);
    const asCreate = await enrollOk(
      t,
      P.program_uuid,
      [
        { student_key: bad, status: 'bogus' },
        { student_key: bad.toLowerCase(), status: 'enrolled' },
        { student_key: existing, status: 'pending' },
        { student_key: existing.toUpperCase(), status: 'pending' },
      ],
      { action: 'create' },
    );
    expectResult(
      asCreate,
      {
        [bad]: 'duplicated',
        [bad.toLowerCase()]: 'duplicated',
        [existing]: 'duplicated',
        [existing.toUpperCase()]: 'duplicated',
      },
      422,
    );
    const asUpdate = await enrollOk(
      t,
      P.program_uuid,
      [
        { student_key: missing, status: 'enrolled' },
        { student_key: missing.toLowerCase(), status: 'enrolled' },
      ],
      { action: 'update' },
    );
    expectResult(asUpdate, { [missing]: 'duplicated', [missing.toLowerCase()]: 'duplicated' }, 422);
    expect(await peOf(t, P.program_uuid, bad)).toBeUndefined();
    expect((await peOf(t, P.program_uuid, existing))!.status).toBe('enrolled');
  });
});

describe('duplicates (SPEC rule 3)', () => {
  it('a key sent twice or more in any case is duplicated for every spelling sent, and none of its records is applied', async () => {
    const dup = uniqueKey('Dup');
    const ok = uniqueKey();
    const r = await enrollOk(t, P.program_uuid, [
      { student_key: dup, status: 'enrolled' },
      { student_key: dup.toLowerCase(), status: 'pending' },
      { student_key: dup, status: 'enrolled' },
      { student_key: ok, status: 'enrolled' },
    ]);
    // One entry per distinct spelling sent: the third record repeats the first spelling.
    expect(r).toEqual({
      code: 207,
      results: { [dup]: 'duplicated', [dup.toLowerCase()]: 'duplicated', [ok]: 'enrolled' },
      counts: { duplicated: 2, enrolled: 1 },
    });
    expect(await peOf(t, P.program_uuid, dup)).toBeUndefined();
  });

  it('the same spelling twice is duplicated (one result entry) and not applied', async () => {
    const k = uniqueKey();
    const r = await enrollOk(t, P.program_uuid, [
      { student_key: k, status: 'enrolled' },
      { student_key: k, status: 'enrolled' },
    ]);
    expectResult(r, { [k]: 'duplicated' }, 422);
    expect(await peOf(t, P.program_uuid, k)).toBeUndefined();
  });

  it('a duplicated key that already has a PE keeps its status and adds no history', async () => {
    const k = uniqueKey('Kept');
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const pe = (await peOf(t, P.program_uuid, k))!;
    const rows = (await historyOf(t, 'program_enrollment', pe.id)).length;
    await agePe(t, pe.id);
    const r = await enrollOk(t, P.program_uuid, [
      { student_key: k.toUpperCase(), status: 'canceled' },
      { student_key: k.toLowerCase(), status: 'canceled' },
    ]);
    expectResult(r, { [k.toUpperCase()]: 'duplicated', [k.toLowerCase()]: 'duplicated' }, 422);
    expect((await peOf(t, P.program_uuid, k))!.status).toBe('enrolled');
    expect(await historyOf(t, 'program_enrollment', pe.id)).toHaveLength(rows);
    expect(await peAgeSeconds(t, pe.id)).toBeGreaterThan(9 * 86400);
  });

  it('keys that differ only by surrounding white space are duplicates, answered under the trimmed spelling', async () => {
    const k = uniqueKey();
    const r = await enrollOk(t, P.program_uuid, [
      { student_key: `  ${k}`, status: 'enrolled' },
      { student_key: `${k}\t`, status: 'enrolled' },
    ]);
    expectResult(r, { [k]: 'duplicated' }, 422);
    expect(await peOf(t, P.program_uuid, k)).toBeUndefined();
  });
});

describe('keys: trimming and case', () => {
  it('trims surrounding white space: stored and answered without it', async () => {
    const k = uniqueKey();
    const r = await enrollOk(t, P.program_uuid, [{ student_key: ` \t${k}  `, status: 'enrolled' }]);
    expectResult(r, { [k]: 'enrolled' }, 200);
    const [row] =
      await t.sql`select student_key from program_enrollments where program_uuid = ${P.program_uuid} and lower(student_key) like ${`%${k.toLowerCase()}%`}`;
    expect(row!.student_key).toBe(k);
  });

  it('matches an existing PE case-insensitively, keeps the first spelling stored, answers in the spelling sent', async () => {
    const first = uniqueKey('CaseKey');
    await enrollOk(t, P.program_uuid, [{ student_key: first, status: 'enrolled' }], { action: 'create' });
    const lower = first.toLowerCase();
    const upd = await enrollOk(t, P.program_uuid, [{ student_key: lower, status: 'canceled' }], { action: 'update' });
    expectResult(upd, { [lower]: 'canceled' }, 200);
    const again = await enrollOk(t, P.program_uuid, [{ student_key: first.toUpperCase(), status: 'pending' }], {
      action: 'create',
    });
    expectResult(again, { [first.toUpperCase()]: 'conflict' }, 422);
    const put = await enrollOk(t, P.program_uuid, [{ student_key: first.toUpperCase(), status: 'ended' }]);
    expectResult(put, { [first.toUpperCase()]: 'ended' }, 200);
    const rows =
      await t.sql`select student_key, status from program_enrollments where program_uuid = ${P.program_uuid} and lower(student_key) = ${lower}`;
    expect(rows.map((r) => ({ ...r }))).toEqual([{ student_key: first, status: 'ended' }]);
  });

  it('accepts a key of 255 characters after trimming', async () => {
    const k = `${uniqueKey('long')}-`.padEnd(255, 'x');
    const r = await enrollOk(t, P.program_uuid, [{ student_key: `  ${k}  `, status: 'enrolled' }]);
    expectResult(r, { [k]: 'enrolled' }, 200);
    expect((await peOf(t, P.program_uuid, k))!.student_key).toBe(k);
  });
});

describe('curriculum', () => {
  it('defaults to the first active curriculum listed (not the first listed)', async () => {
    const k = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'create' });
    const pe = (await peOf(t, P.program_uuid, k))!;
    expect(pe.curriculum_uuid).toBe(defaultCurriculum);
    expect(pe.curriculum_uuid).not.toBe(inactiveCurriculum);
  });

  it("uses the curriculum_uuid sent when it is one of the program's", async () => {
    const k = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled', curriculum_uuid: secondCurriculum }], {
      action: 'create',
    });
    expect((await peOf(t, P.program_uuid, k))!.curriculum_uuid).toBe(secondCurriculum);
  });

  it('an update never changes the curriculum (update and create_or_update)', async () => {
    const k = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled', curriculum_uuid: defaultCurriculum }]);
    const r1 = await enrollOk(
      t,
      P.program_uuid,
      [{ student_key: k, status: 'pending', curriculum_uuid: secondCurriculum }],
      { action: 'update' },
    );
    expectResult(r1, { [k]: 'pending' }, 200);
    const r2 = await enrollOk(t, P.program_uuid, [
      { student_key: k, status: 'canceled', curriculum_uuid: secondCurriculum },
    ]);
    expectResult(r2, { [k]: 'canceled' }, 200);
    const pe = (await peOf(t, P.program_uuid, k))!;
    expect(pe).toMatchObject({ status: 'canceled', curriculum_uuid: defaultCurriculum });
    const rows = await historyOf(t, 'program_enrollment', pe.id);
    expect(rows.some((h) => 'curriculum_uuid' in h.changes && h.action === 'changed')).toBe(false);
  });
});

describe('payload errors', () => {
  const failsAtOnce = (data: unknown) => writeFailsAtOnce(t, 'write-program-enrollments', data);

  it('a record with an empty student key fails the job naming enrollments.3.student_key, without retries, writing nothing', async () => {
    const keys = [uniqueKey(), uniqueKey(), uniqueKey()];
    const reason = await failsAtOnce({
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: [
        ...keys.map((k) => ({ student_key: k, status: 'enrolled' })),
        { student_key: '   ', status: 'enrolled' },
      ],
    });
    expect(reason).toMatch(/^invalid payload: /);
    expect(reason).toMatch(/(^invalid payload: |; )enrollments\.3\.student_key: \S/);
    for (const k of keys) expect(await peOf(t, P.program_uuid, k)).toBeUndefined();
  });

  it('a student key longer than 255 characters after trimming is an invalid payload', async () => {
    const reason = await failsAtOnce({
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: [{ student_key: 'y'.repeat(256), status: 'enrolled' }],
    });
    expect(reason).toMatch(/^invalid payload: enrollments\.0\.student_key: \S/);
  });

  it('names every problem as "path: message", separated by "; "', async () => {
    const reason = await failsAtOnce({
      program_uuid: P.program_uuid,
      action: 'upsert',
      enrollments: [
        { student_key: uniqueKey(), status: 'enrolled' },
        { student_key: uniqueKey(), status: 7 },
        { student_key: uniqueKey(), status: 'enrolled' },
        { student_key: '', status: 'enrolled' },
      ],
    });
    expect(reason.startsWith('invalid payload: ')).toBe(true);
    const problems = reason.slice('invalid payload: '.length).split('; ');
    const paths = problems.map((p) => p.slice(0, p.indexOf(': '))).sort();
    expect(paths).toEqual(['action', 'enrollments.1.status', 'enrollments.3.student_key']);
    for (const p of problems) expect(p).toMatch(/^[\w.]+: \S/);
  });

  it('a missing student_key or enrollments list is an invalid payload naming it', async () => {
    const r1 = await failsAtOnce({
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: [{ status: 'enrolled' }],
    });
    expect(r1).toMatch(/^invalid payload: enrollments\.0\.student_key: /);
    const r2 = await failsAtOnce({ program_uuid: P.program_uuid, action: 'create' });
    expect(r2).toMatch(/^invalid payload: enrollments: /);
  });

  it('ignores unknown fields', async () => {
    const k = uniqueKey();
    const done = await t.run('enrollments', 'write-program-enrollments', {
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: [{ student_key: k, status: 'enrolled', email: 'x@example.org' }],
      dry_run: true,
    });
    expect(done.state, done.failedReason).toBe('completed');
    expectResult(done.result, { [k]: 'enrolled' }, 200);
  });

  it("a curriculum_uuid that is not one of the program's is an invalid payload naming enrollments.N.curriculum_uuid", async () => {
    const other = await newProgram(t);
    const keys = [uniqueKey(), uniqueKey(), uniqueKey()];
    const reason = await failsAtOnce({
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: [
        { student_key: keys[0], status: 'enrolled', curriculum_uuid: defaultCurriculum },
        { student_key: keys[1], status: 'enrolled' },
        { student_key: keys[2], status: 'enrolled', curriculum_uuid: other.curricula[0]!.curriculum_uuid },
      ],
    });
    expect(reason).toMatch(/^invalid payload: (.*; )?enrollments\.2\.curriculum_uuid: \S/);
    const unknown = await failsAtOnce({
      program_uuid: P.program_uuid,
      action: 'create',
      enrollments: [{ student_key: keys[0], status: 'enrolled', curriculum_uuid: randomUUID() }],
    });
    expect(unknown).toMatch(/^invalid payload: enrollments\.0\.curriculum_uuid: \S/);
    for (const k of keys) expect(await peOf(t, P.program_uuid, k)).toBeUndefined();
  });

  it('an unknown program fails with "unknown program <uuid>", without retries, writing nothing', async () => {
    const uuid = randomUUID();
    const reason = await failsAtOnce({
      program_uuid: uuid,
      action: 'create',
      enrollments: [{ student_key: uniqueKey(), status: 'enrolled' }],
    });
    expect(reason.startsWith(`unknown program ${uuid}`)).toBe(true);
  });

  describe('a program with no active curriculum', () => {
    const Q = useProgram(t);
    let kept: string;
    beforeAll(async () => {
      // Enrolled while its curriculum was active, then the catalog retired the curriculum.
      kept = uniqueKey();
      await enrollOk(t, Q.program_uuid, [{ student_key: kept, status: 'enrolled' }]);
      await upsertProgram(t, { ...Q, curricula: Q.curricula.map((c) => ({ ...c, is_active: false })) });
    });

    it('a job in which a record omits curriculum_uuid fails "program <uuid> has no active curriculum", without retries, writing nothing', async () => {
      const [a, b] = [uniqueKey(), uniqueKey()];
      const reason = await failsAtOnce({
        program_uuid: Q.program_uuid,
        action: 'create',
        enrollments: [
          { student_key: a, status: 'enrolled', curriculum_uuid: Q.curricula[0]!.curriculum_uuid },
          { student_key: b, status: 'enrolled' },
        ],
      });
      expect(reason).toContain(`program ${Q.program_uuid} has no active curriculum`);
      expect(await peOf(t, Q.program_uuid, a)).toBeUndefined();
      expect(await peOf(t, Q.program_uuid, b)).toBeUndefined();
    });

    it('fails the same way for an update that omits curriculum_uuid (CONTRACT: "any record omits")', async () => {
      const reason = await failsAtOnce({
        program_uuid: Q.program_uuid,
        action: 'update',
        enrollments: [{ student_key: kept, status: 'canceled' }],
      });
      expect(reason).toContain(`program ${Q.program_uuid} has no active curriculum`);
      expect((await peOf(t, Q.program_uuid, kept))!.status).toBe('enrolled');
    });
  });
});

describe('waiting and realized (SPEC rule 5)', () => {
  it("creates a realized PE when an earlier account-created recorded the learner's identity", async () => {
    const k = uniqueKey();
    const acc = await announceLearner(t, k);
    const r = await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'create' });
    expectResult(r, { [k]: 'enrolled' }, 200);
    expect((await peOf(t, P.program_uuid, k))!.user_id).toBe(acc.user_id);
  });

  it('matches the identity case-insensitively and ignores surrounding white space in the write', async () => {
    const k = uniqueKey('MixedCase');
    const acc = await announceLearner(t, k.toUpperCase());
    await enrollOk(t, P.program_uuid, [{ student_key: `  ${k.toLowerCase()} `, status: 'enrolled' }], {
      action: 'create',
    });
    expect((await peOf(t, P.program_uuid, k))!.user_id).toBe(acc.user_id);
  });

  it('leaves the PE waiting when no account is known for the learner', async () => {
    const k = uniqueKey();
    await announceLearner(t, uniqueKey());
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'create' });
    expect((await peOf(t, P.program_uuid, k))!.user_id).toBeNull();
  });

  it('the same key in another organization is another person: the PE stays waiting', async () => {
    const k = uniqueKey();
    const elsewhere = await announceLearner(t, k, 'OtherU');
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'create' });
    expect((await peOf(t, P.program_uuid, k))!.user_id).toBeNull();
    // ...while a program of that organization realizes it.
    const theirs = await newProgram(t, { org: 'OtherU' });
    await enrollOk(t, theirs.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'create' });
    expect((await peOf(t, theirs.program_uuid, k))!).toMatchObject({
      user_id: elsewhere.user_id,
      organization_key: 'OtherU',
    });
  });

  it("one account with identities in two organizations is realized in both organizations' programs", async () => {
    const [k1, k2] = [uniqueKey(), uniqueKey()];
    const acc = await announceAccount(t, [
      { organization_key: ORG, external_user_key: k1 },
      { organization_key: 'ThirdU', external_user_key: k2 },
    ]);
    const third = await newProgram(t, { org: 'ThirdU' });
    await enrollOk(t, P.program_uuid, [{ student_key: k1, status: 'enrolled' }]);
    await enrollOk(t, third.program_uuid, [
      { student_key: k2, status: 'enrolled' },
      { student_key: k1, status: 'enrolled' },
    ]);
    expect((await peOf(t, P.program_uuid, k1))!.user_id).toBe(acc.user_id);
    expect((await peOf(t, third.program_uuid, k2))!.user_id).toBe(acc.user_id);
    expect((await peOf(t, third.program_uuid, k1))!.user_id).toBeNull();
  });

  it('a later write to a waiting PE links it once the account is known (after an explicit link elsewhere)', async () => {
    const k = uniqueKey();
    const X = await newProgram(t);
    await enrollOk(t, X.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'pending' }]);
    const acc = await announceAccount(t, []);
    const link = await t.run('enrollments', 'link-program-enrollments', {
      program_uuid: X.program_uuid,
      links: [{ student_key: k, username: acc.username }],
    });
    expect(link.state, link.failedReason).toBe('completed');
    expect(link.result).toEqual({ errors: {} });
    expect((await peOf(t, X.program_uuid, k))!.user_id).toBe(acc.user_id);
    // CONTRACT: "A link does not touch the learner's waiting PEs in other programs; the next write to them links them."
    expect((await peOf(t, P.program_uuid, k))!.user_id).toBeNull();
    const done = await enroll(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'update' });
    expectResult(done.result, { [k]: 'enrolled' }, 200);
    const pe = (await peOf(t, P.program_uuid, k))!;
    expect(pe.user_id).toBe(acc.user_id);
    const rows = (await historyOfJob(t, done.job.id!)).filter((h) => h.entity === 'program_enrollment');
    // The link and the status change may be one row or two; together they say both.
    expect(rows.length).toBeGreaterThanOrEqual(1);
    expect(Object.assign({}, ...rows.map((r) => r.changes))).toEqual({
      user_id: [null, acc.user_id],
      status: ['pending', 'enrolled'],
    });
  });

  it('creating a realized PE creates no course enrollment', async () => {
    const k = uniqueKey();
    const acc = await announceLearner(t, k);
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const [{ n }] =
      (await t.sql`select count(*)::int as n from course_enrollments where user_id = ${acc.user_id}`) as any;
    expect(n).toBe(0);
    const [{ m }] =
      (await t.sql`select count(*)::int as m from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id where pe.user_id = ${acc.user_id}`) as any;
    expect(m).toBe(0);
  });
});

describe('program status changes never cascade (SPEC rule 7)', () => {
  it('canceling and ending a realized PE leaves its PCE and CE as they were', async () => {
    const k = uniqueKey();
    const acc = await announceLearner(t, k);
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    await enrollCourseOk(t, P.program_uuid, COURSE, [{ student_key: k, status: 'active' }]);
    const ce = (await ceOf(t, acc.user_id, COURSE))!;
    expect(ce).toMatchObject({ mode: 'masters', is_active: true });
    for (const status of ['canceled', 'ended', 'suspended']) {
      await enrollOk(t, P.program_uuid, [{ student_key: k, status }], { action: 'update' });
      expect((await pceOf(t, P.program_uuid, k, COURSE))!.status).toBe('active');
      expect(await ceOf(t, acc.user_id, COURSE)).toEqual(ce);
    }
  });
});

describe('history (SPEC rule 12)', () => {
  it('a create adds one "created" row with the fields, the BullMQ job id and requested_by', async () => {
    const k = uniqueKey();
    const done = await enroll(t, P.program_uuid, [{ student_key: ` ${k} `, status: 'pending' }], {
      action: 'create',
      requested_by: 'registrar:jdoe',
    });
    expect(done.state, done.failedReason).toBe('completed');
    const pe = (await peOf(t, P.program_uuid, k))!;
    const rows = await historyOf(t, 'program_enrollment', pe.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      action: 'created',
      program_enrollment_id: pe.id,
      job_id: done.job.id,
      requested_by: 'registrar:jdoe',
      changes: { student_key: [null, k], status: [null, 'pending'], curriculum_uuid: [null, defaultCurriculum] },
    });
    expect(Object.keys(rows[0]!.changes).sort()).toEqual(['curriculum_uuid', 'status', 'student_key']);
  });

  it('a realized create records user_id in its "created" row', async () => {
    const k = uniqueKey();
    const acc = await announceLearner(t, k);
    const done = await enroll(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { action: 'create' });
    const pe = (await peOf(t, P.program_uuid, k))!;
    const [row] = await historyOf(t, 'program_enrollment', pe.id);
    expect(row).toMatchObject({
      action: 'created',
      job_id: done.job.id,
      requested_by: null,
      changes: {
        student_key: [null, k],
        status: [null, 'enrolled'],
        curriculum_uuid: [null, defaultCurriculum],
        user_id: [null, acc.user_id],
      },
    });
  });

  it('a status change adds one "changed" row with [old, new], requested_by null when none was sent', async () => {
    const k = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { requested_by: 'someone' });
    const done = await enroll(t, P.program_uuid, [{ student_key: k, status: 'canceled' }], { action: 'update' });
    const pe = (await peOf(t, P.program_uuid, k))!;
    const rows = await historyOf(t, 'program_enrollment', pe.id);
    expect(rows.map((r) => r.action)).toEqual(['created', 'changed']);
    expect(rows[1]).toMatchObject({
      job_id: done.job.id,
      requested_by: null,
      program_enrollment_id: pe.id,
      changes: { status: ['enrolled', 'canceled'] },
    });
    expect(Object.keys(rows[1]!.changes)).toEqual(['status']);
  });

  it("a write that changes nothing adds no row but refreshes the PE's modification time", async () => {
    const k = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const pe = (await peOf(t, P.program_uuid, k))!;
    await agePe(t, pe.id);
    expect(await peAgeSeconds(t, pe.id)).toBeGreaterThan(9 * 86400);
    const done = await enroll(t, P.program_uuid, [{ student_key: k.toUpperCase(), status: 'enrolled' }], {
      action: 'update',
    });
    expectResult(done.result, { [k.toUpperCase()]: 'enrolled' }, 200);
    expect(await historyOf(t, 'program_enrollment', pe.id)).toHaveLength(1);
    expect(await historyOfJob(t, done.job.id!)).toEqual([]);
    expect(await peAgeSeconds(t, pe.id)).toBeLessThan(120);
  });

  it("records that end in conflict or invalid-status add no history and leave the PE's modification time alone", async () => {
    const k = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }]);
    const pe = (await peOf(t, P.program_uuid, k))!;
    await agePe(t, pe.id);
    const c = await enroll(t, P.program_uuid, [{ student_key: k, status: 'pending' }], { action: 'create' });
    const i = await enroll(t, P.program_uuid, [{ student_key: k, status: 'nope' }], { action: 'update' });
    expect(c.result.results).toEqual({ [k]: 'conflict' });
    expect(i.result.results).toEqual({ [k]: 'invalid-status' });
    expect(await historyOfJob(t, c.job.id!)).toEqual([]);
    expect(await historyOfJob(t, i.job.id!)).toEqual([]);
    expect(await peAgeSeconds(t, pe.id)).toBeGreaterThan(9 * 86400);
  });

  it('a producer-chosen jobId is the job_id of the rows', async () => {
    const k = uniqueKey();
    const jobId = `reg-${uniqueKey('hist')}`;
    const done = await enroll(t, P.program_uuid, [{ student_key: k, status: 'enrolled' }], { job: { jobId } });
    expect(done.job.id).toBe(jobId);
    const rows = await historyOfJob(t, jobId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ entity: 'program_enrollment', action: 'created' });
  });

  it('one job writing many learners adds exactly one row per created or changed PE', async () => {
    const existing = [uniqueKey(), uniqueKey(), uniqueKey()];
    await enrollOk(
      t,
      P.program_uuid,
      existing.map((k) => ({ student_key: k, status: 'enrolled' })),
    );
    const fresh = [uniqueKey(), uniqueKey()];
    const done = await enroll(
      t,
      P.program_uuid,
      [
        { student_key: existing[0]!, status: 'canceled' },
        { student_key: existing[1]!, status: 'enrolled' }, // unchanged
        { student_key: existing[2]!, status: 'bad' },
        ...fresh.map((k) => ({ student_key: k, status: 'pending' })),
      ],
      { requested_by: 'bulk' },
    );
    const rows = await historyOfJob(t, done.job.id!);
    const pes = await pesOf(t, P.program_uuid);
    const keyOf = new Map(pes.map((p) => [p.id, p.student_key]));
    expect(rows.map((r) => `${keyOf.get(r.program_enrollment_id!)}:${r.action}`).sort()).toEqual(
      [`${existing[0]}:changed`, `${fresh[0]}:created`, `${fresh[1]}:created`].sort(),
    );
    expect(rows.every((r) => r.requested_by === 'bulk' && r.entity === 'program_enrollment')).toBe(true);
  });

  it('the history of every row replays to the row as it is now', async () => {
    await expectHistoryReplaysToState(t);
  });
});
