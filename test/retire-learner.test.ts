/**
 * retire-learner (queue `enrollments`): GDPR retirement of an account's learner keys.
 * CONTRACT.md "retire-learner", "Retired keys"; SPEC.md rule 12.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type Account,
  accountCreated,
  completed,
  expectNoTrace,
  getPce,
  getPe,
  historyOf,
  newAccount,
  newCourseKey,
  newOrg,
  newProgram,
  type ProgramPayload,
  pcesOfPe,
  peOf,
  pesOfUser,
  RETIRED_KEY,
  tableCounts,
  token,
  traces,
  writeCourseEnrollments,
  writeEnrollments,
} from './support/fixtures.js';
import { type FinishedJob, useTestService } from './support/service.js';

const t = useTestService();

function retire(user_id: number): Promise<FinishedJob<{ retired: number }>> {
  return t.run<{ retired: number }>('enrollments', 'retire-learner', { user_id });
}

describe('retire-learner: an account with PEs in two organizations', () => {
  const s = {} as {
    orgA: string;
    orgB: string;
    cA: string;
    cB: string;
    p1: ProgramPayload;
    p2: ProgramPayload;
    p3: ProgramPayload;
    keyA: string;
    keyB: string;
    account: Account;
    peIds: number[];
    pceBefore: Map<number, Awaited<ReturnType<typeof pcesOfPe>>>;
    done: FinishedJob<{ retired: number }>;
  };

  beforeAll(async () => {
    s.orgA = newOrg();
    s.orgB = newOrg('Other');
    s.cA = newCourseKey(s.orgA);
    s.cB = newCourseKey(s.orgB);
    s.p1 = await newProgram(t, { org: s.orgA, courses: [s.cA] });
    s.p2 = await newProgram(t, { org: s.orgA, courses: [s.cA] });
    s.p3 = await newProgram(t, { org: s.orgB, courses: [s.cB] });
    s.keyA = `Secret-Key-${token()}`;
    s.keyB = `Other-Secret-${token()}`;
    s.account = newAccount('retiree');

    // Waiting PEs (history rows name the key), linked by the account; then one created realized.
    await writeEnrollments(t, s.p1, [s.keyA], { requested_by: 'registrar:jdoe' });
    await writeCourseEnrollments(t, s.p1, s.cA, [{ student_key: s.keyA, status: 'active', course_staff: true }]);
    await writeEnrollments(t, s.p1, [{ student_key: s.keyA.toUpperCase(), status: 'pending' }]);
    await writeEnrollments(t, s.p3, [s.keyB]);
    await writeCourseEnrollments(t, s.p3, s.cB, [s.keyB]);
    const linked = await accountCreated(t, s.account, [
      { organization_key: s.orgA, external_user_key: s.keyA.toLowerCase() },
      { organization_key: s.orgB, external_user_key: s.keyB },
    ]);
    expect(completed(linked).linked).toHaveLength(2);
    await writeEnrollments(t, s.p2, [s.keyA.toLowerCase()]);
    await writeCourseEnrollments(t, s.p2, s.cA, [{ student_key: s.keyA, status: 'inactive' }]);
    const pes = await pesOfUser(t, s.account.user_id);
    expect(pes).toHaveLength(3);
    s.peIds = pes.map((p) => p.id);
    s.pceBefore = new Map();
    for (const id of s.peIds) s.pceBefore.set(id, await pcesOfPe(t, id));
    // The keys are there before retirement, so the trace checks below can fail.
    expect((await traces(t, s.keyA)).history).toBeGreaterThan(0);
    expect((await traces(t, s.keyB)).program_enrollments).toBe(1);

    s.done = await retire(s.account.user_id);
  });

  it('answers { retired: 3 }', () => {
    expect(completed(s.done)).toEqual({ retired: 3 });
  });

  it('gives every PE of the account a key of retired_ and 64 lowercase hex characters', async () => {
    const rows = await t.sql<{ id: number; student_key: string }[]>`
      select id::float8 as id, student_key from program_enrollments where id = any(${s.peIds}::bigint[]) order by id`;
    expect(rows.map((r) => r.id)).toEqual(s.peIds);
    for (const r of rows) expect(r.student_key).toMatch(RETIRED_KEY);
  });

  it('leaves no trace of the old keys, in any case, in enrollments, history or identities', async () => {
    for (const key of [s.keyA, s.keyB]) {
      await expectNoTrace(t, key);
    }
  });

  it("records the new key in each PE's history, naming the job", async () => {
    const jobId = String(s.done.job.id);
    for (const id of s.peIds) {
      const [pe] = await t.sql<{ student_key: string }[]>`select student_key from program_enrollments where id = ${id}`;
      const rows = (await historyOf(t, 'program_enrollment', id)).filter((r) => r.job_id === jobId);
      expect(rows).toHaveLength(1);
      expect(rows[0]!.action).toBe('changed');
      expect(rows[0]!.changes.student_key?.[1]).toBe(pe!.student_key);
      expect(rows[0]!.changes.student_key?.[0]).not.toEqual(expect.stringMatching(/secret/i));
    }
  });

  it("leaves the PEs' statuses, PCEs and course enrollments as they were", async () => {
    for (const id of s.peIds) expect(await pcesOfPe(t, id)).toEqual(s.pceBefore.get(id));
    const pe1 = (
      await t.sql<{ status: string }[]>`select status from program_enrollments where id = ${s.peIds[0]!}`
    )[0]!;
    expect(pe1.status).toBe('pending');
  });

  it('answers 404 on the history endpoint for the old key', async () => {
    const res = await t.api(`/api/v1/programs/${s.p1.program_uuid}/enrollments/${encodeURIComponent(s.keyA)}/history`);
    expect(res.status).toBe(404);
  });

  it('answers { retired: 0 } on a second run and changes nothing', async () => {
    const counts = await tableCounts(t);
    const keys =
      await t.sql`select id, student_key from program_enrollments where id = any(${s.peIds}::bigint[]) order by id`;

    expect(completed(await retire(s.account.user_id))).toEqual({ retired: 0 });

    expect(await tableCounts(t)).toEqual(counts);
    expect(
      await t.sql`select id, student_key from program_enrollments where id = any(${s.peIds}::bigint[]) order by id`,
    ).toEqual(keys);
  });

  it('lets a later upload of the old key create a new waiting PE', async () => {
    const write = await writeEnrollments(t, s.p1, [s.keyA], { action: 'create' });
    expect(write.result.results).toEqual({ [s.keyA]: 'enrolled' });
    const pe = await getPe(t, s.p1.program_uuid, s.keyA);
    expect(s.peIds).not.toContain(pe.id);
    expect(pe).toMatchObject({ student_key: s.keyA, user_id: null, status: 'enrolled' });
  });

  it('lets the new learner take an active course seat the retired one still holds', async () => {
    // The retired PE in P1 still has its active PCE in cA; the new PE is another learner.
    const write = await writeCourseEnrollments(t, s.p1, s.cA, [s.keyA], { action: 'create' });
    expect(write.result.results).toEqual({ [s.keyA]: 'active' });
    const pe = await getPe(t, s.p1.program_uuid, s.keyA);
    expect((await getPce(t, pe.id, s.cA)).course_enrollment_id).toBeNull();
  });

  it('creates the new PE waiting in the other organization too', async () => {
    await writeEnrollments(t, s.p3, [s.keyB], { action: 'create' });
    expect((await getPe(t, s.p3.program_uuid, s.keyB)).user_id).toBeNull();
  });

  it("forgets the account's identities: a later write in another program of the organization creates a waiting PE", async () => {
    const p4 = await newProgram(t, { org: s.orgA, courses: [] });
    await writeEnrollments(t, p4, [s.keyA.toLowerCase()]);
    expect((await getPe(t, p4.program_uuid, s.keyA)).user_id).toBeNull();
  });
});

describe('retire-learner: other cases', () => {
  it('answers { retired: 0 } for an account without PEs', async () => {
    const account = newAccount();
    completed(await accountCreated(t, account, []));
    expect(completed(await retire(account.user_id))).toEqual({ retired: 0 });
  });

  it('forgets an identity that never matched a PE, so a later write creates a waiting PE', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const key = `unmatched-${token()}`;
    const account = newAccount();
    completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }]));

    expect(completed(await retire(account.user_id))).toEqual({ retired: 0 });

    await expectNoTrace(t, key);
    await writeEnrollments(t, p, [key]);
    expect((await getPe(t, p.program_uuid, key)).user_id).toBeNull();
  });

  it('does not touch another learner with the same key in another organization', async () => {
    const o = newOrg();
    const elsewhere = newOrg('Elsewhere');
    const p = await newProgram(t, { org: o, courses: [] });
    const pOther = await newProgram(t, { org: elsewhere, courses: [] });
    const key = `shared-name-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeEnrollments(t, pOther, [key]);
    const account = newAccount();
    expect(
      completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: key }])).linked,
    ).toHaveLength(1);
    const other = await getPe(t, pOther.program_uuid, key);
    const otherHistory = await historyOf(t, 'program_enrollment', other.id);

    expect(completed(await retire(account.user_id))).toEqual({ retired: 1 });

    expect(await peOf(t, p.program_uuid, key)).toBeUndefined();
    expect(await getPe(t, pOther.program_uuid, key)).toEqual(other);
    expect(await historyOf(t, 'program_enrollment', other.id)).toEqual(otherHistory);
  });

  it('retires a PE linked by explicit linking', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const key = `explicit-${token()}`;
    await writeEnrollments(t, p, [key]);
    const account = newAccount();
    completed(await accountCreated(t, account, []));
    const link = await t.run('enrollments', 'link-program-enrollments', {
      program_uuid: p.program_uuid,
      links: [{ student_key: key, username: account.username }],
    });
    expect(completed(link)).toEqual({ errors: {} });

    expect(completed(await retire(account.user_id))).toEqual({ retired: 1 });

    expect((await pesOfUser(t, account.user_id))[0]!.student_key).toMatch(RETIRED_KEY);
    await expectNoTrace(t, key);
  });

  it('fails at once on an invalid user_id, naming the field', async () => {
    const done = await t.run('enrollments', 'retire-learner', { user_id: 0 }, { attempts: 3 });
    expect(done.state).toBe('failed');
    expect(done.failedReason).toMatch(/^invalid payload: /);
    expect(done.failedReason).toContain('user_id: ');
    expect(done.job.attemptsMade).toBe(1);
  });
});
