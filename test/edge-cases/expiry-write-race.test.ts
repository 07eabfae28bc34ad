/**
 * expire-waiting-enrollments and a program write on the same waiting PE at the same moment.
 * SPEC 11 "Any write to a PE refreshes its modification time"; CONTRACT "A result is the learner's
 * new status". A write that refreshes the PE at the same moment must win.
 *
 * The expiry is held, after it has deleted the PE and before it commits, by a lock the test takes
 * on an old job_results row that the expiry's retention clean-up deletes in the same transaction.
 * The learner also has a PE in another program, so the expiry keeps the learner row and the write
 * does not wait on it.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  completed,
  expectHistoryReplaysToState,
  getPe,
  newOrg,
  newProgram,
  peOf,
  token,
  writeEnrollments,
} from '../support/fixtures.js';
import { type TestService, useTestService, waitFor } from '../support/service.js';

const t = useTestService();

async function waitForLockWait(pattern: string): Promise<void> {
  await waitFor(
    async () => {
      const rows = await t.sql`
        select 1 from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and query ilike ${pattern}`;
      return rows.length ? true : undefined;
    },
    10_000,
    `a statement like ${pattern} waiting on a lock`,
    20,
  );
}

/** Holds the expiry after it deleted the old PE of `key` in p1, adds `write`, waits until it blocks, lets both finish. */
async function raceExpiry(
  _key: string,
  oldPeId: number,
  waitPattern: string,
  write: () => ReturnType<TestService['add']>,
) {
  await t.sql`update program_enrollments set modified_at = now() - interval '100 days' where id = ${oldPeId}`;
  const marker = `account-created/edge-${randomUUID()}`;
  await t.sql`insert into job_results (key, result, finished_at) values (${marker}, '{}'::jsonb, now() - interval '100 days')`;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const holder = t.sql.begin(async (tx) => {
    await tx`select 1 from job_results where key = ${marker} for update`;
    locked();
    await released;
  });
  await isLocked;
  const expiry = await t.add('enrollments', 'expire-waiting-enrollments', { expiration_days: 60 });
  await waitForLockWait('%delete from job_results%');
  const job = await write();
  await waitForLockWait(waitPattern);
  release();
  await holder;
  const removed = completed(await t.wait<{ removed: { program_enrollments: number } }>(expiry));
  expect(removed.removed.program_enrollments).toBeGreaterThanOrEqual(1);
  return completed(await t.wait<{ results: Record<string, string> }>(job));
}

describe('expiry racing a write', () => {
  it('a create_or_update that waited on the expiry ends with the PE it reports', async () => {
    const o = newOrg();
    const p1 = await newProgram(t, { org: o, courses: [] });
    const p2 = await newProgram(t, { org: o, courses: [] });
    const key = `race-${token()}`;
    await writeEnrollments(t, p1, [{ student_key: key, status: 'pending' }]);
    await writeEnrollments(t, p2, [key]);
    const old = await getPe(t, p1.program_uuid, key);
    const written = await raceExpiry(key, old.id, '%learners%', () =>
      t.add('enrollments', 'write-program-enrollments', {
        program_uuid: p1.program_uuid,
        action: 'create_or_update',
        enrollments: [{ student_key: key, status: 'enrolled' }],
      }),
    );
    expect(written.results).toEqual({ [key]: 'enrolled' });
    // The write reported the learner enrolled in p1: there must be such a PE.
    expect(await peOf(t, p1.program_uuid, key)).toMatchObject({ status: 'enrolled' });
  });

  it('a PE deleted between the write reading it and updating it is written again, not reported changed', async () => {
    // Expiry deletes by age, and a PE that came of age after it locked the learners is deleted
    // without its learner's lock (rule 11). Here the test is that deleter: it holds the PE's row
    // until the write waits on it in its update, then deletes the PE with its history.
    const o = newOrg();
    const p = await newProgram(t, { org: o, courses: [] });
    const key = `vanish-${token()}`;
    await writeEnrollments(t, p, [{ student_key: key, status: 'pending' }]);
    const old = await getPe(t, p.program_uuid, key);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const deleter = t.sql.begin(async (tx) => {
      await tx`select 1 from program_enrollments where id = ${old.id} for update`;
      locked();
      await released;
      await tx`delete from history where program_enrollment_id = ${old.id}`;
      await tx`delete from program_enrollments where id = ${old.id}`;
    });
    await isLocked;
    const job = await t.add('enrollments', 'write-program-enrollments', {
      program_uuid: p.program_uuid,
      action: 'create_or_update',
      enrollments: [{ student_key: key, status: 'enrolled' }],
    });
    await waitForLockWait('%update program_enrollments%');
    release();
    await deleter;
    const written = completed(await t.wait<{ results: Record<string, string> }>(job));
    expect(written.results).toEqual({ [key]: 'enrolled' });
    const now = await peOf(t, p.program_uuid, key);
    expect(now).toMatchObject({ status: 'enrolled' });
    expect(now!.id).not.toBe(old.id);
    await expectHistoryReplaysToState(t);
  });
});
