/**
 * link-program-enrollments (queue `enrollments`): the support tool's explicit linking.
 * CONTRACT.md "link-program-enrollments" and "Explicit linking"; SPEC.md rules 5, 6, 8, 10, 12.
 */

import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type Account,
  accountCreated,
  ceById,
  ceOf,
  cesOf,
  completed,
  getPce,
  getPe,
  historyOf,
  linkEnrollments,
  newAccount,
  newCourseKey,
  newOrg,
  newProgram,
  pendingRoles,
  staffRoles,
  tableCounts,
  token,
  writeCourseEnrollments,
  writeEnrollments,
} from './support/fixtures.js';
import { useTestService } from './support/service.js';

const t = useTestService();

/** An account the service knows (announced without SSO identities). */
async function knownAccount(label = 'acct'): Promise<Account> {
  const account = newAccount(label);
  expect(completed(await accountCreated(t, account, []))).toEqual({ linked: [] });
  return account;
}

const noUser = (u: string) => `No user found with username ${u}`;
const noPe = (p: string, k: string) =>
  `No program enrollment found for program uuid=${p} and external student key=${k}`;
const alreadyLinked = (k: string, u: string) =>
  `Program enrollment with external_student_key=${k} is already linked to target account username=${u}`;
const hasPe = (u: string, p: string) => `User ${u} already has a program enrollment in program uuid=${p}`;
const twice = (k: string) => `external user key ${k} provided multiple times`;

describe('link-program-enrollments: linking', () => {
  it('links a waiting PE to the account and answers { errors: {} }', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const key = `link-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [{ student_key: key, status: 'active', course_staff: true }]);
    const account = await knownAccount();

    const done = await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: account.username }]);

    expect(completed(done)).toEqual({ errors: {} });
    const pe = await getPe(t, p.program_uuid, key);
    expect(pe.user_id).toBe(account.user_id);
    const pce = await getPce(t, pe.id, c);
    expect(await ceById(t, pce.course_enrollment_id!)).toMatchObject({
      user_id: account.user_id,
      course_key: c,
      mode: 'masters',
      is_active: true,
    });
    expect(await staffRoles(t, account.user_id)).toEqual([c]);
    expect(await pendingRoles(t, pce.id)).toBe(0);
  });

  it('leaves history rows for the PE, the PCE and the CE that name the job', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const key = `hist-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [key]);
    const account = await knownAccount();

    const done = await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: account.username }]);
    expect(completed(done)).toEqual({ errors: {} });
    const jobId = String(done.job.id);

    const pe = await getPe(t, p.program_uuid, key);
    const pce = await getPce(t, pe.id, c);
    const peRows = (await historyOf(t, 'program_enrollment', pe.id)).filter((r) => r.job_id === jobId);
    expect(peRows.map((r) => [r.action, r.changes.user_id])).toEqual([['changed', [null, account.user_id]]]);
    const pceRows = (await historyOf(t, 'program_course_enrollment', pce.id)).filter((r) => r.job_id === jobId);
    expect(pceRows.map((r) => [r.action, r.changes.course_enrollment_id])).toEqual([
      ['changed', [null, pce.course_enrollment_id]],
    ]);
    const ceRows = (await historyOf(t, 'course_enrollment', pce.course_enrollment_id!)).filter(
      (r) => r.job_id === jobId,
    );
    expect(ceRows.map((r) => r.action)).toEqual(['created']);
  });

  it('matches the key case-insensitively and trims keys and usernames', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const key = `Trim-Me-${token()}`;
    await writeEnrollments(t, p, [key]);
    const account = await knownAccount();

    const done = await linkEnrollments(t, p.program_uuid, [
      { student_key: `  ${key.toUpperCase()}\t`, username: `  ${account.username} ` },
    ]);

    expect(completed(done)).toEqual({ errors: {} });
    expect(await getPe(t, p.program_uuid, key)).toMatchObject({ student_key: key, user_id: account.user_id });
  });

  it('links an inactive PCE to an inactive masters CE', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const key = `inactive-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [{ student_key: key, status: 'inactive' }]);
    const account = await knownAccount();

    expect(
      completed(await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: account.username }])),
    ).toEqual({ errors: {} });

    expect(await ceOf(t, account.user_id, c)).toMatchObject({ mode: 'masters', is_active: false });
  });

  it('keeps an active verified CE of the account verified', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [{ course_key: c, modes: ['audit', 'masters', 'verified'] }] });
    const key = `verified-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [key]);
    const account = await knownAccount();
    const changed = await t.run('accounts', 'course-enrollment-changed', {
      event_id: randomUUID(),
      user_id: account.user_id,
      course_key: c,
      mode: 'verified',
      is_active: true,
    });
    completed(changed);

    expect(
      completed(await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: account.username }])),
    ).toEqual({ errors: {} });

    const ces = await cesOf(t, account.user_id);
    expect(ces.map((x) => [x.course_key, x.mode, x.is_active])).toEqual([[c, 'verified', true]]);
    expect((await getPce(t, (await getPe(t, p.program_uuid, key)).id, c)).course_enrollment_id).toBe(ces[0]!.id);
  });

  it('fails a job naming an unknown program without retries', async () => {
    const uuid = randomUUID();
    const done = await t.run(
      'enrollments',
      'link-program-enrollments',
      { program_uuid: uuid, links: [{ student_key: 'k', username: 'u' }] },
      { attempts: 3 },
    );
    expect(done.state).toBe('failed');
    expect(done.failedReason).toMatch(new RegExp(`^unknown program ${uuid}`));
    expect(done.job.attemptsMade).toBe(1);
  });

  it('fails a malformed job, naming the field', async () => {
    const done = await t.run('enrollments', 'link-program-enrollments', {
      program_uuid: randomUUID(),
      links: [{ student_key: 'k', username: '  ' }],
    });
    expect(done.state).toBe('failed');
    expect(done.failedReason).toMatch(/^invalid payload: /);
    expect(done.failedReason).toContain('links.0.username: ');
  });
});

describe('link-program-enrollments: error messages', () => {
  it('reports an unknown username', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const key = `nouser-${token()}`;
    await writeEnrollments(t, p, [key]);
    const ghost = `ghost-${token()}`;

    const done = await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: ` ${ghost} ` }]);

    expect(completed(done)).toEqual({ errors: { [key]: noUser(ghost) } });
    expect((await getPe(t, p.program_uuid, key)).user_id).toBeNull();
  });

  it('matches usernames exactly, not case-insensitively', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const key = `exact-${token()}`;
    await writeEnrollments(t, p, [key]);
    const account = await knownAccount('CasedName');

    const done = await linkEnrollments(t, p.program_uuid, [
      { student_key: key, username: account.username.toUpperCase() },
    ]);

    expect(completed(done)).toEqual({ errors: { [key]: noUser(account.username.toUpperCase()) } });
  });

  it('reports a key without a PE in this program, even when another program has one', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const other = await newProgram(t, { org: o, courses: [] });
    const key = `elsewhere-${token()}`;
    await writeEnrollments(t, other, [key]);
    const account = await knownAccount();

    const done = await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: account.username }]);

    expect(completed(done)).toEqual({ errors: { [key]: noPe(p.program_uuid, key) } });
    expect((await getPe(t, other.program_uuid, key)).user_id).toBeNull();
  });

  it('reports a PE already linked to the target account, with the key as sent, and changes nothing', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const key = `Linked-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [key]);
    const account = await knownAccount();
    expect(
      completed(await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: account.username }])),
    ).toEqual({ errors: {} });
    const counts = await tableCounts(t);
    const sent = key.toUpperCase();

    const done = await linkEnrollments(t, p.program_uuid, [{ student_key: sent, username: account.username }]);

    // "already linked to that account" comes before "the account already has a PE in the program".
    expect(completed(done)).toEqual({ errors: { [sent]: alreadyLinked(sent, account.username) } });
    expect(await tableCounts(t)).toEqual(counts);
  });

  it('reports an account that already has a PE in the program and leaves the key waiting', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const first = `first-${token()}`;
    const second = `second-${token()}`;
    await writeEnrollments(t, p, [first, second]);
    const account = await knownAccount();
    expect(
      completed(await linkEnrollments(t, p.program_uuid, [{ student_key: first, username: account.username }])),
    ).toEqual({ errors: {} });

    const done = await linkEnrollments(t, p.program_uuid, [{ student_key: second, username: account.username }]);

    expect(completed(done)).toEqual({ errors: { [second]: hasPe(account.username, p.program_uuid) } });
    expect((await getPe(t, p.program_uuid, second)).user_id).toBeNull();
    expect((await getPe(t, p.program_uuid, first)).user_id).toBe(account.user_id);
  });

  it('reports every spelling of a key given twice and applies none of them', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const key = `dup-${token()}`;
    const fine = `fine-${token()}`;
    await writeEnrollments(t, p, [key, fine]);
    const [a, b, c] = [await knownAccount(), await knownAccount(), await knownAccount()];

    const done = await linkEnrollments(t, p.program_uuid, [
      { student_key: key, username: a.username },
      { student_key: fine, username: c.username },
      { student_key: key.toUpperCase(), username: b.username },
    ]);

    expect(completed(done)).toEqual({ errors: { [key]: twice(key), [key.toUpperCase()]: twice(key.toUpperCase()) } });
    expect((await getPe(t, p.program_uuid, key)).user_id).toBeNull();
    expect((await getPe(t, p.program_uuid, fine)).user_id).toBe(c.user_id);
  });

  it('reports a key given twice with the same spelling and username once', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const key = `same-${token()}`;
    await writeEnrollments(t, p, [key]);
    const a = await knownAccount();

    const done = await linkEnrollments(t, p.program_uuid, [
      { student_key: key, username: a.username },
      { student_key: key, username: a.username },
    ]);

    expect(completed(done)).toEqual({ errors: { [key]: twice(key) } });
    expect((await getPe(t, p.program_uuid, key)).user_id).toBeNull();
  });

  it('puts "given twice" before "no such user" and "no such PE"', async () => {
    const p = await newProgram(t, { org: newOrg(), courses: [] });
    const key = `nothing-${token()}`;
    const ghost = `ghost-${token()}`;

    const done = await linkEnrollments(t, p.program_uuid, [
      { student_key: key, username: ghost },
      { student_key: key.toUpperCase(), username: ghost },
    ]);

    expect(completed(done)).toEqual({ errors: { [key]: twice(key), [key.toUpperCase()]: twice(key.toUpperCase()) } });
  });

  it('puts "no such user" before "no such PE"', async () => {
    const p = await newProgram(t, { org: newOrg(), courses: [] });
    const key = `nothing-${token()}`;
    const ghost = `ghost-${token()}`;

    const done = await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: ghost }]);

    expect(completed(done)).toEqual({ errors: { [key]: noUser(ghost) } });
  });

  it('puts "no such PE" before "the account already has a PE in the program"', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const enrolled = `enrolled-${token()}`;
    await writeEnrollments(t, p, [enrolled]);
    const account = await knownAccount();
    expect(
      completed(await linkEnrollments(t, p.program_uuid, [{ student_key: enrolled, username: account.username }])),
    ).toEqual({ errors: {} });
    const missing = `missing-${token()}`;

    const done = await linkEnrollments(t, p.program_uuid, [{ student_key: missing, username: account.username }]);

    expect(completed(done)).toEqual({ errors: { [missing]: noPe(p.program_uuid, missing) } });
  });

  it('links the other keys when some fail', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const [k1, k2, k3, k4] = [1, 2, 3, 4].map((i) => `mixed${i}-${token()}`);
    await writeEnrollments(t, p, [k1!, k3!, k4!]);
    await writeCourseEnrollments(t, p, c, [k1!, k3!, k4!]);
    const [u1, u2, u4] = [await knownAccount(), await knownAccount(), await knownAccount()];
    const ghost = `ghost-${token()}`;

    const done = await linkEnrollments(t, p.program_uuid, [
      { student_key: k1!, username: u1.username },
      { student_key: k2!, username: u2.username },
      { student_key: k3!, username: ghost },
      { student_key: k4!, username: u4.username },
    ]);

    expect(completed(done)).toEqual({ errors: { [k2!]: noPe(p.program_uuid, k2!), [k3!]: noUser(ghost) } });
    for (const [k, u] of [
      [k1!, u1],
      [k4!, u4],
    ] as const) {
      const pe = await getPe(t, p.program_uuid, k);
      expect(pe.user_id).toBe(u.user_id);
      expect((await getPce(t, pe.id, c)).course_enrollment_id).not.toBeNull();
    }
    expect((await getPe(t, p.program_uuid, k3!)).user_id).toBeNull();
    expect(await cesOf(t, u2.user_id)).toEqual([]);
  });
});

describe('link-program-enrollments: relinking to another account', () => {
  it('unlinks first: old CEs deactivated, moved to audit where the course offers it, and the PCEs point at new CEs', async () => {
    const o = newOrg();
    const withAudit = newCourseKey(o, 'Audit');
    const noAudit = newCourseKey(o, 'NoAudit');
    const p = await newProgram(t, {
      org: o,
      courses: [withAudit, { course_key: noAudit, modes: ['masters', 'verified'] }],
    });
    const key = `relink-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, withAudit, [key]);
    await writeCourseEnrollments(t, p, noAudit, [key]);
    const oldAccount = newAccount('old');
    expect(
      completed(await accountCreated(t, oldAccount, [{ organization_key: o, external_user_key: key }])).linked,
    ).toHaveLength(1);
    const oldCes = await cesOf(t, oldAccount.user_id);
    expect(oldCes.map((x) => [x.mode, x.is_active])).toEqual([
      ['masters', true],
      ['masters', true],
    ]);
    const newAcc = await knownAccount('new');

    const done = await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: newAcc.username }]);

    expect(completed(done)).toEqual({ errors: {} });
    const pe = await getPe(t, p.program_uuid, key);
    expect(pe.user_id).toBe(newAcc.user_id);
    expect(await ceOf(t, oldAccount.user_id, withAudit)).toMatchObject({
      id: oldCes.find((x) => x.course_key === withAudit)!.id,
      mode: 'audit',
      is_active: false,
    });
    expect(await ceOf(t, oldAccount.user_id, noAudit)).toMatchObject({
      id: oldCes.find((x) => x.course_key === noAudit)!.id,
      mode: 'masters',
      is_active: false,
    });
    const newCes = await cesOf(t, newAcc.user_id);
    expect(newCes.map((x) => [x.course_key, x.mode, x.is_active]).sort()).toEqual(
      [
        [withAudit, 'masters', true],
        [noAudit, 'masters', true],
      ].sort(),
    );
    for (const c of [withAudit, noAudit]) {
      expect((await getPce(t, pe.id, c)).course_enrollment_id).toBe(newCes.find((x) => x.course_key === c)!.id);
    }
    const stillPointing = await t.sql`
      select count(*)::int as n from program_course_enrollments
      where course_enrollment_id = any(${oldCes.map((x) => x.id)}::bigint[])`;
    expect(stillPointing[0]!.n).toBe(0);
  });

  it('records the unlinking and linking in the history, naming the job', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const key = `relink-hist-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [key]);
    const oldAccount = await knownAccount('old');
    expect(
      completed(await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: oldAccount.username }])),
    ).toEqual({ errors: {} });
    const oldCe = (await ceOf(t, oldAccount.user_id, c))!;
    const newAcc = await knownAccount('new');

    const done = await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: newAcc.username }]);
    expect(completed(done)).toEqual({ errors: {} });
    const jobId = String(done.job.id);

    const pe = await getPe(t, p.program_uuid, key);
    const peRows = (await historyOf(t, 'program_enrollment', pe.id)).filter((r) => r.job_id === jobId);
    expect(peRows.length).toBeGreaterThanOrEqual(1);
    expect(peRows.every((r) => r.action === 'changed' && r.changes.user_id !== undefined)).toBe(true);
    // Whether one row [old, new] or an unlink and a link row: it starts at the old account and ends at the new one.
    expect(peRows[0]!.changes.user_id![0]).toBe(oldAccount.user_id);
    expect(peRows.at(-1)!.changes.user_id![1]).toBe(newAcc.user_id);
    const oldCeRows = (await historyOf(t, 'course_enrollment', oldCe.id)).filter((r) => r.job_id === jobId);
    expect(oldCeRows.length).toBeGreaterThanOrEqual(1);
    expect(oldCeRows.every((r) => r.action === 'changed')).toBe(true);
    const merged = Object.assign({}, ...oldCeRows.map((r) => r.changes)) as Record<string, [unknown, unknown]>;
    expect(merged.is_active?.[1]).toBe(false);
    expect(merged.mode?.[1]).toBe('audit');
  });

  it('keeps the old CE active when another active PCE of the old account holds it', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p1 = await newProgram(t, { org: o, courses: [c] });
    const p2 = await newProgram(t, { org: o, courses: [c] });
    const key = `shared-${token()}`;
    await writeEnrollments(t, p1, [key]);
    await writeCourseEnrollments(t, p1, c, [{ student_key: key, status: 'inactive' }]);
    await writeEnrollments(t, p2, [key]);
    await writeCourseEnrollments(t, p2, c, [{ student_key: key, status: 'active' }]);
    const oldAccount = newAccount('old');
    expect(
      completed(await accountCreated(t, oldAccount, [{ organization_key: o, external_user_key: key }])).linked,
    ).toHaveLength(2);
    const [shared] = await cesOf(t, oldAccount.user_id);
    expect(shared).toMatchObject({ mode: 'masters', is_active: true });
    const newAcc = await knownAccount('new');

    const done = await linkEnrollments(t, p1.program_uuid, [{ student_key: key, username: newAcc.username }]);

    expect(completed(done)).toEqual({ errors: {} });
    expect(await cesOf(t, oldAccount.user_id)).toEqual([shared]);
    const pce2 = await getPce(t, (await getPe(t, p2.program_uuid, key)).id, c);
    expect(pce2.course_enrollment_id).toBe(shared!.id);
    const pce1 = await getPce(t, (await getPe(t, p1.program_uuid, key)).id, c);
    expect(await ceById(t, pce1.course_enrollment_id!)).toMatchObject({
      user_id: newAcc.user_id,
      mode: 'masters',
      is_active: false,
    });
  });

  it('relinks back and forth: the account linked last holds an active masters CE, the other an inactive audit one', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const key = `relink-ok-${token()}`;
    await writeEnrollments(t, p, [key]);
    await writeCourseEnrollments(t, p, c, [key]);
    const oldAccount = await knownAccount('old');
    const newAcc = await knownAccount('new');
    expect(
      completed(await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: oldAccount.username }])),
    ).toEqual({ errors: {} });

    // Relinking back and forth works each time.
    expect(
      completed(await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: newAcc.username }])),
    ).toEqual({ errors: {} });
    expect(
      completed(await linkEnrollments(t, p.program_uuid, [{ student_key: key, username: oldAccount.username }])),
    ).toEqual({ errors: {} });

    const pe = await getPe(t, p.program_uuid, key);
    expect(pe.user_id).toBe(oldAccount.user_id);
    const pce = await getPce(t, pe.id, c);
    const oldCe = (await ceOf(t, oldAccount.user_id, c))!;
    expect(pce.course_enrollment_id).toBe(oldCe.id);
    expect(oldCe).toMatchObject({ mode: 'masters', is_active: true });
    expect(await ceOf(t, newAcc.user_id, c)).toMatchObject({ mode: 'audit', is_active: false });
  });
});

describe('link-program-enrollments: the account becomes known', () => {
  it('makes a later write in another program of the organization create a realized PE', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p1 = await newProgram(t, { org: o, courses: [] });
    const p2 = await newProgram(t, { org: o, courses: [c] });
    const elsewhere = await newProgram(t, { org: newOrg('Other'), courses: [] });
    const key = `known-${token()}`;
    await writeEnrollments(t, p1, [key]);
    const account = await knownAccount();
    expect(
      completed(await linkEnrollments(t, p1.program_uuid, [{ student_key: key, username: account.username }])),
    ).toEqual({ errors: {} });

    await writeEnrollments(t, p2, [key.toUpperCase()]);
    await writeCourseEnrollments(t, p2, c, [key]);
    await writeEnrollments(t, elsewhere, [key]);

    const pe2 = await getPe(t, p2.program_uuid, key);
    expect(pe2.user_id).toBe(account.user_id);
    expect(await ceById(t, (await getPce(t, pe2.id, c)).course_enrollment_id!)).toMatchObject({
      user_id: account.user_id,
      mode: 'masters',
      is_active: true,
    });
    expect((await getPe(t, elsewhere.program_uuid, key)).user_id).toBeNull();
  });

  it("does not touch the learner's waiting PEs in other programs", async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p1 = await newProgram(t, { org: o, courses: [] });
    const p2 = await newProgram(t, { org: o, courses: [c] });
    const key = `other-waiting-${token()}`;
    await writeEnrollments(t, p1, [key]);
    await writeEnrollments(t, p2, [key]);
    await writeCourseEnrollments(t, p2, c, [{ student_key: key, status: 'active', course_staff: true }]);
    const account = await knownAccount();
    const waiting = await getPe(t, p2.program_uuid, key);

    expect(
      completed(await linkEnrollments(t, p1.program_uuid, [{ student_key: key, username: account.username }])),
    ).toEqual({ errors: {} });

    expect((await getPe(t, p1.program_uuid, key)).user_id).toBe(account.user_id);
    expect(await getPe(t, p2.program_uuid, key)).toEqual(waiting);
    const pce = await getPce(t, waiting.id, c);
    expect(pce.course_enrollment_id).toBeNull();
    expect(await pendingRoles(t, pce.id)).toBe(1);
    expect(await ceOf(t, account.user_id, c)).toBeUndefined();
  });

  it('links such a waiting PE on the next write to it', async () => {
    const o = newOrg();
    const p1 = await newProgram(t, { org: o, courses: [] });
    const p2 = await newProgram(t, { org: o, courses: [] });
    const key = `next-write-${token()}`;
    await writeEnrollments(t, p1, [key]);
    await writeEnrollments(t, p2, [key]);
    const account = await knownAccount();
    expect(
      completed(await linkEnrollments(t, p1.program_uuid, [{ student_key: key, username: account.username }])),
    ).toEqual({ errors: {} });
    expect((await getPe(t, p2.program_uuid, key)).user_id).toBeNull();

    await writeEnrollments(t, p2, [{ student_key: key, status: 'pending' }]);

    expect(await getPe(t, p2.program_uuid, key)).toMatchObject({ user_id: account.user_id, status: 'pending' });
  });

  it('realizes the PCEs and grants the pending roles of a PE linked by that next write', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p1 = await newProgram(t, { org: o, courses: [] });
    const p2 = await newProgram(t, { org: o, courses: [c] });
    const key = `next-write-pce-${token()}`;
    await writeEnrollments(t, p1, [key]);
    await writeEnrollments(t, p2, [key]);
    await writeCourseEnrollments(t, p2, c, [{ student_key: key, status: 'active', course_staff: true }]);
    const account = await knownAccount();
    expect(
      completed(await linkEnrollments(t, p1.program_uuid, [{ student_key: key, username: account.username }])),
    ).toEqual({ errors: {} });

    await writeEnrollments(t, p2, [key]);

    const pe = await getPe(t, p2.program_uuid, key);
    expect(pe.user_id).toBe(account.user_id);
    const pce = await getPce(t, pe.id, c);
    expect(pce.course_enrollment_id).not.toBeNull();
    expect(await ceById(t, pce.course_enrollment_id!)).toMatchObject({
      user_id: account.user_id,
      mode: 'masters',
      is_active: true,
    });
    expect(await staffRoles(t, account.user_id)).toEqual([c]);
    expect(await pendingRoles(t, pce.id)).toBe(0);
  });
});
