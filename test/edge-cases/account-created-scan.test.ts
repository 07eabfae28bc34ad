/**
 * Performance: an account-created event should touch only the rows of its own learners.
 * recordAccount's `update learners ... where l.user_id = $u or exists (select 1 from v where …)`
 * cannot use an index for the OR'd EXISTS, so every event reads the whole learners table.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { enrollOk, newProgram, ORG, uniqueKey, uniqueUserId } from '../support/fixtures.js';
import { useTestService, waitFor } from '../support/service.js';

const t = useTestService();

/**
 * Makes the service's backends publish their statistics. A backend flushes its pending counters
 * when it exits, and otherwise only once idle, up to 10 s later: so end its idle ones (it names its
 * connections and reconnects on demand) and wait until they are gone.
 */
async function flushServiceBackends(): Promise<void> {
  const ended = await t.sql`
    select pid, pg_terminate_backend(pid) from pg_stat_activity
    where datname = current_database() and application_name = 'program-enrollments' and state = 'idle'`;
  const pids = ended.map((r) => r.pid as number);
  await waitFor(
    async () => ((await t.sql`select 1 from pg_stat_activity where pid = any(${pids})`).length ? undefined : true),
    10_000,
    'the ended backends of the service to exit',
  );
}

async function learnerScans(): Promise<{ seq: number; tuples: number }> {
  // Drop this session's cached snapshot of the cumulative statistics.
  await t.sql`select pg_stat_clear_snapshot()`;
  const [r] =
    await t.sql`select coalesce(seq_scan, 0)::int8 as seq, coalesce(seq_tup_read, 0)::int8 as tuples from pg_stat_user_tables where relname = 'learners'`;
  return { seq: Number(r!.seq), tuples: Number(r!.tuples) };
}

describe('account-created on a large learners table', () => {
  it('does not read every learner row for one event', async () => {
    const P = await newProgram(t);
    // 200,000 learners of the organization (as bulk writes leave behind), then fresh statistics.
    await t.sql`insert into learners (organization_key, student_key) select ${ORG}, 'bulk-' || g from generate_series(1, 200000) g`;
    await t.sql`analyze learners`;
    const key = uniqueKey();
    await enrollOk(t, P.program_uuid, [{ student_key: key, status: 'enrolled' }]);
    await flushServiceBackends();

    const before = await learnerScans();
    const user_id = uniqueUserId();
    const done = await t.run('accounts', 'account-created', {
      event_id: randomUUID(),
      user_id,
      username: `u${user_id}`,
      identities: [{ organization_key: ORG, external_user_key: key }],
    });
    expect(done.state, done.failedReason).toBe('completed');
    expect(done.result.linked).toHaveLength(1);
    await flushServiceBackends();
    const after = await learnerScans();

    expect(after.tuples - before.tuples, `sequential scans of learners: ${after.seq - before.seq}`).toBeLessThan(1_000);
  });
});
