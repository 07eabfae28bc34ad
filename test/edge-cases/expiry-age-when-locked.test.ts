/**
 * An expiry that waits for a learner's lock measures the age of the waiting PEs when it has the
 * locks, not when its transaction began (docs/rules.md rule 11): a PE modified while the expiry
 * waited, by a transaction that committed before the expiry looked, is judged by its own
 * modification time, as an expiry started after that transaction would judge it. With
 * `expiration_days: 0` every waiting PE is old enough then. Found by the fault suite's sequential
 * model, which replays an expiry after the writes that committed before it.
 */
import { describe, expect, it } from 'vitest';
import { completed, getPe, newOrg, newProgram, peOf, uniqueKey, writeEnrollments } from '../support/fixtures.js';
import { useTestService, waitFor } from '../support/service.js';

const t = useTestService();

describe('expiry waiting for a learner lock', () => {
  it('removes a waiting PE modified while it waited', async () => {
    const org = newOrg();
    const program = await newProgram(t, { org, courses: [] });
    const key = uniqueKey('age');
    await writeEnrollments(t, program, [key]);
    const pe = await getPe(t, program.program_uuid, key);

    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = t.sql.begin(async (tx) => {
      await tx`select 1 from learners where organization_key = ${org} and student_key_lower = lower(${key}) for update`;
      locked();
      await released;
    });
    await isLocked;
    const expiry = await t.add('enrollments', 'expire-waiting-enrollments', { expiration_days: 0 });
    // The expiry's transaction has begun and waits for the learner.
    await waitFor(
      async () => {
        const rows = await t.sql`
          select 1 from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock' and query ilike '%learners%'`;
        return rows.length ? true : undefined;
      },
      10_000,
      'the expiry waiting on the learner lock',
      20,
    );
    // A modification that commits after the expiry began, before it looks.
    await t.sql`update program_enrollments set modified_at = now() where id = ${pe.id}`;
    release();
    await holder;
    const result = completed(await t.wait<{ removed: { program_enrollments: number } }>(expiry));
    expect(result.removed.program_enrollments).toBeGreaterThanOrEqual(1);
    expect(await peOf(t, program.program_uuid, key)).toBeUndefined();
  });
});
