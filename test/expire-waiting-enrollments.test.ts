/**
 * expire-waiting-enrollments (queue `enrollments`) and its daily schedule.
 * CONTRACT.md "expire-waiting-enrollments", "History rows"; SPEC.md rules 11, 12.
 *
 * Ages are set with `update program_enrollments set modified_at = now() - interval …`. The job
 * runs after that update, so a PE aged exactly N days is at least N days old when the job looks:
 * "at the limit" is deterministic. Every test starts with all waiting PEs fresh (beforeEach), so
 * the counts a run reports are this test's own.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  accountCreated,
  ceById,
  completed,
  getPce,
  getPe,
  newAccount,
  newCourseKey,
  newOrg,
  newProgram,
  type ProgramPayload,
  pcesOfPe,
  pendingRoles,
  peOf,
  token,
  writeCourseEnrollments,
  writeEnrollments,
} from './support/fixtures.js';
import { useTestService } from './support/service.js';

const t = useTestService();

beforeEach(async () => {
  await t.sql`update program_enrollments set modified_at = now() where user_id is null`;
});

interface Removed {
  removed: { program_enrollments: number; program_course_enrollments: number };
}

async function age(peId: number, interval: string): Promise<void> {
  const rows =
    await t.sql`update program_enrollments set modified_at = now() - ${interval}::interval where id = ${peId} returning id`;
  expect(rows).toHaveLength(1);
}

async function expire(data: unknown): Promise<Removed> {
  return completed(await t.run<Removed>('enrollments', 'expire-waiting-enrollments', data));
}

/** A waiting learner in `program` with a PCE in each of `courses` (the first with a pending staff role). */
async function waiting(program: ProgramPayload, courses: string[], label = 'w') {
  const key = `${label}-${token()}`;
  await writeEnrollments(t, program, [key]);
  for (const [i, c] of courses.entries()) {
    await writeCourseEnrollments(t, program, c, [
      { student_key: key, status: 'active', ...(i === 0 ? { course_staff: true } : {}) },
    ]);
  }
  const pe = await getPe(t, program.program_uuid, key);
  const pces = await pcesOfPe(t, pe.id);
  /** The PCE with the pending staff role (in the first course). */
  const staffPce = pces.find((x) => x.course_key === courses[0]);
  return { key, pe, pces, staffPce };
}

async function historyCount(peId: number, pceIds: number[]): Promise<number> {
  const [row] = await t.sql`
    select count(*)::int as n from history
    where program_enrollment_id = ${peId}
       or (entity = 'program_enrollment' and entity_id = ${peId})
       or (entity = 'program_course_enrollment' and entity_id = any(${pceIds}::bigint[]))`;
  return row!.n;
}

describe('expire-waiting-enrollments', () => {
  it('removes waiting PEs at and past the limit with their PCEs and pending roles', async () => {
    const o = newOrg();
    const [c1, c2] = [newCourseKey(o), newCourseKey(o)];
    const p = await newProgram(t, { org: o, courses: [c1!, c2!] });
    const atLimit = await waiting(p, [c1!, c2!], 'at');
    const past = await waiting(p, [c1!], 'past');
    const bare = await waiting(p, [], 'bare');
    await age(atLimit.pe.id, '61 days');
    await age(past.pe.id, '400 days');
    await age(bare.pe.id, '62 days');
    expect(await pendingRoles(t, atLimit.staffPce!.id)).toBe(1);

    const result = await expire({ expiration_days: 61 });

    expect(result).toEqual({ removed: { program_enrollments: 3, program_course_enrollments: 3 } });
    for (const gone of [atLimit, past, bare]) {
      expect(await peOf(t, p.program_uuid, gone.key)).toBeUndefined();
      expect(await pcesOfPe(t, gone.pe.id)).toEqual([]);
    }
    const [pending] = await t.sql`
      select count(*)::int as n from pending_role_assignments
      where program_course_enrollment_id = any(${[...atLimit.pces, ...past.pces].map((x) => x.id)}::bigint[])`;
    expect(pending!.n).toBe(0);
  });

  it('keeps waiting PEs fresher than the limit, with their PCEs and pending roles', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const fresh = await waiting(p, [c], 'fresh');
    await age(fresh.pe.id, '61 days');
    await t.sql`update program_enrollments set modified_at = modified_at + interval '10 minutes' where id = ${fresh.pe.id}`;

    expect(await expire({ expiration_days: 61 })).toEqual({
      removed: { program_enrollments: 0, program_course_enrollments: 0 },
    });

    expect((await getPe(t, p.program_uuid, fresh.key)).id).toBe(fresh.pe.id);
    expect(await pcesOfPe(t, fresh.pe.id)).toEqual(fresh.pces);
    expect(await pendingRoles(t, fresh.staffPce!.id)).toBe(1);
  });

  it('never removes a realized PE, however old', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const learner = await waiting(p, [c], 'realized');
    const account = newAccount();
    expect(
      completed(await accountCreated(t, account, [{ organization_key: o, external_user_key: learner.key }])).linked,
    ).toHaveLength(1);
    await age(learner.pe.id, '3650 days');

    expect(await expire({ expiration_days: 60 })).toEqual({
      removed: { program_enrollments: 0, program_course_enrollments: 0 },
    });

    const pe = await getPe(t, p.program_uuid, learner.key);
    expect(pe.user_id).toBe(account.user_id);
    const pce = await getPce(t, pe.id, c);
    expect(await ceById(t, pce.course_enrollment_id!)).toMatchObject({ user_id: account.user_id, is_active: true });
  });

  it('deletes the history of what it removes and keeps the history of what it keeps', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const old = await waiting(p, [c], 'old');
    const fresh = await waiting(p, [c], 'fresh');
    const oldPceIds = old.pces.map((x) => x.id);
    expect(await historyCount(old.pe.id, oldPceIds)).toBeGreaterThanOrEqual(2);
    const freshHistory = await historyCount(
      fresh.pe.id,
      fresh.pces.map((x) => x.id),
    );
    expect(freshHistory).toBeGreaterThanOrEqual(2);
    await age(old.pe.id, '90 days');

    expect(await expire({ expiration_days: 60 })).toEqual({
      removed: { program_enrollments: 1, program_course_enrollments: 1 },
    });

    expect(await historyCount(old.pe.id, oldPceIds)).toBe(0);
    expect(
      await historyCount(
        fresh.pe.id,
        fresh.pces.map((x) => x.id),
      ),
    ).toBe(freshHistory);
  });

  it('makes the history endpoint answer 404 for what it removed', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const old = await waiting(p, [c], 'api');
    const path = `/api/v1/programs/${p.program_uuid}/enrollments/${encodeURIComponent(old.key)}/history`;
    const before = await t.api(path);
    expect(before.status).toBe(200);
    expect(((await before.json()) as unknown[]).length).toBeGreaterThanOrEqual(2);
    await age(old.pe.id, '90 days');

    expect(await expire({ expiration_days: 60 })).toEqual({
      removed: { program_enrollments: 1, program_course_enrollments: 1 },
    });

    expect((await t.api(path)).status).toBe(404);
  });

  it('uses 60 days when expiration_days is omitted', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    const past = await waiting(p, [c], 'past60');
    const fresher = await waiting(p, [c], 'fresh60');
    await age(past.pe.id, '60 days');
    await age(fresher.pe.id, '59 days 23 hours');

    expect(await expire({})).toEqual({ removed: { program_enrollments: 1, program_course_enrollments: 1 } });

    expect(await peOf(t, p.program_uuid, past.key)).toBeUndefined();
    expect(await peOf(t, p.program_uuid, fresher.key)).toBeDefined();
  });

  it('accepts a fraction of a day', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const older = await waiting(p, [], 'half-old');
    const younger = await waiting(p, [], 'half-young');
    await age(older.pe.id, '12 hours');
    await age(younger.pe.id, '11 hours 50 minutes');

    expect(await expire({ expiration_days: 0.5 })).toEqual({
      removed: { program_enrollments: 1, program_course_enrollments: 0 },
    });

    expect(await peOf(t, p.program_uuid, older.key)).toBeUndefined();
    expect(await peOf(t, p.program_uuid, younger.key)).toBeDefined();
  });

  it("counts on the PE's own modification time: a program write refreshes it, a course write does not", async () => {
    const o = newOrg();
    const [c1, c2] = [newCourseKey(o), newCourseKey(o)];
    const p = await newProgram(t, { org: o, courses: [c1!, c2!] });
    const rewritten = await waiting(p, [c1!], 'rewritten');
    const courseOnly = await waiting(p, [c1!], 'course-only');
    await age(rewritten.pe.id, '90 days');
    await age(courseOnly.pe.id, '90 days');

    // The same status again: no change, no history row, but the clock restarts.
    await writeEnrollments(t, p, [rewritten.key]);
    await writeCourseEnrollments(t, p, c2!, [courseOnly.key]);
    await writeCourseEnrollments(t, p, c1!, [{ student_key: courseOnly.key, status: 'inactive' }]);

    expect(await expire({ expiration_days: 60 })).toEqual({
      removed: { program_enrollments: 1, program_course_enrollments: 2 },
    });

    expect(await peOf(t, p.program_uuid, rewritten.key)).toBeDefined();
    expect(await peOf(t, p.program_uuid, courseOnly.key)).toBeUndefined();
  });

  it('removes nothing on a second run', async () => {
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const old = await waiting(p, [], 'twice');
    await age(old.pe.id, '100 days');

    expect(await expire({ expiration_days: 60 })).toEqual({
      removed: { program_enrollments: 1, program_course_enrollments: 0 },
    });
    expect(await expire({ expiration_days: 60 })).toEqual({
      removed: { program_enrollments: 0, program_course_enrollments: 0 },
    });
  });

  it('with expiration_days 0 removes every waiting PE and no realized one', async () => {
    const o = newOrg();
    const c = newCourseKey(o);
    const p = await newProgram(t, { org: o, courses: [c] });
    await waiting(p, [c], 'zero');
    const linked = await waiting(p, [c], 'zero-linked');
    completed(await accountCreated(t, newAccount(), [{ organization_key: o, external_user_key: linked.key }]));
    const [expected] = await t.sql`
      select count(distinct pe.id)::int as pes, count(pce.id)::int as pces
      from program_enrollments pe left join program_course_enrollments pce on pce.program_enrollment_id = pe.id
      where pe.user_id is null`;
    const [realized] = await t.sql`select count(*)::int as n from program_enrollments where user_id is not null`;
    expect(expected!.pes).toBeGreaterThanOrEqual(1);

    expect(await expire({ expiration_days: 0 })).toEqual({
      removed: { program_enrollments: expected!.pes, program_course_enrollments: expected!.pces },
    });

    const [left] = await t.sql`select count(*)::int as n from program_enrollments where user_id is null`;
    expect(left!.n).toBe(0);
    const [still] = await t.sql`select count(*)::int as n from program_enrollments where user_id is not null`;
    expect(still!.n).toBe(realized!.n);
  });

  it('fails at once on a negative expiration_days, naming the field', async () => {
    const done = await t.run('enrollments', 'expire-waiting-enrollments', { expiration_days: -1 }, { attempts: 3 });
    expect(done.state).toBe('failed');
    expect(done.failedReason).toMatch(/^invalid payload: /);
    expect(done.failedReason).toContain('expiration_days: ');
    expect(done.job.attemptsMade).toBe(1);
  });
});

describe('the daily expiry schedule', () => {
  it('exists once after two more processes start', async () => {
    await t.startPeer();
    await t.startPeer();

    const schedulers = await t.queues.enrollments.getJobSchedulers();

    expect(schedulers).toHaveLength(1);
    const [s] = schedulers;
    expect(s!.name).toBe('expire-waiting-enrollments');
    // Daily: the next run is at most a day away.
    expect(s!.next).toBeGreaterThan(Date.now() - 1_000);
    expect(s!.next! - Date.now()).toBeLessThanOrEqual(24 * 3600 * 1000);
    expect(await t.queues.accounts.getJobSchedulers()).toEqual([]);
  });
});
