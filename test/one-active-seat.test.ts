/**
 * SPEC rule 1 under concurrency: a learner has at most one active PCE per course across all
 * programs, whatever the interleaving. 20 write-program-course-enrollments jobs are added at once,
 * each asking to activate the same learner in the same course through a different program; two
 * processes (the service and a peer) work the queue. Run with the learner locks on (the default)
 * and off: the locks only make the jobs wait; Postgres alone must keep the rule.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  announceLearner,
  COURSE,
  cesOf,
  enrollCourseOk,
  enrollOk,
  expectHistoryReplaysToState,
  learnersWithTwoActiveSeats,
  type ProgramPayload,
  pcesOfLearner,
  peOf,
  programPayload,
  uniqueKey,
  upsertProgram,
  type WriteResult,
} from './support/fixtures.js';
import { type FinishedJob, useTestService } from './support/service.js';

const PROGRAMS = 20;

for (const locks of ['on', 'off'] as const) {
  describe(`one active seat, learner locks ${locks}`, () => {
    const t = useTestService(locks === 'off' ? { LEARNER_LOCKS: 'off' } : {});
    let programs: ProgramPayload[];

    beforeAll(async () => {
      await t.startPeer(locks === 'off' ? { LEARNER_LOCKS: 'off' } : {});
      programs = [];
      for (let i = 0; i < PROGRAMS; i++) programs.push(await upsertProgram(t, programPayload()));
    });

    /** Enrolls the learners in every program (one job per program). */
    async function enrollEverywhere(keys: string[]): Promise<void> {
      for (const p of programs) {
        await enrollOk(
          t,
          p.program_uuid,
          keys.map((k) => ({ student_key: k, status: 'enrolled' })),
        );
      }
    }

    /** One course job per program, all added at once with addBulk; waits for every one. */
    async function race(
      records: (programIndex: number) => { student_key: string; status: string }[],
      action: 'create' | 'update' | 'create_or_update' = 'create_or_update',
    ): Promise<FinishedJob<WriteResult>[]> {
      const jobs = await t.queues.enrollments.addBulk(
        programs.map((p, i) => ({
          name: 'write-program-course-enrollments',
          data: { program_uuid: p.program_uuid, course_key: COURSE, action, enrollments: records(i) },
        })),
      );
      const done = await Promise.all(jobs.map((j) => t.wait<WriteResult>(j, 180_000)));
      for (const d of done) expect(d.state, d.failedReason).toBe('completed');
      return done;
    }

    /** The 20 jobs' single results, in program order. */
    const singleResults = (done: FinishedJob<WriteResult>[], key: (i: number) => string) =>
      done.map((d, i) => {
        expect(Object.keys(d.result.results)).toEqual([key(i)]);
        return d.result.results[key(i)]!;
      });

    function expectOneWinner(results: string[], done: FinishedJob<WriteResult>[]): number {
      expect(results.filter((r) => r === 'active')).toHaveLength(1);
      expect(results.filter((r) => r === 'conflict')).toHaveLength(PROGRAMS - 1);
      const winner = results.indexOf('active');
      done.forEach((d, i) => {
        expect(d.result.code).toBe(i === winner ? 200 : 422);
        expect(d.result.counts).toEqual(i === winner ? { active: 1 } : { conflict: 1 });
      });
      return winner;
    }

    it('waiting learner, 20 jobs added at once: exactly one active, 19 conflict, one active PCE in Postgres', async () => {
      const key = uniqueKey('seat-w');
      await enrollEverywhere([key]);
      const done = await race(() => [{ student_key: key, status: 'active' }]);
      const winner = expectOneWinner(
        singleResults(done, () => key),
        done,
      );
      const pces = await pcesOfLearner(t, key, COURSE);
      // The 19 conflicts changed nothing: the winner's PCE is the only one.
      expect(pces.map((p) => [p.program_uuid, p.status])).toEqual([[programs[winner]!.program_uuid, 'active']]);
      expect(pces[0]!.course_enrollment_id).toBeNull();
    });

    it('realized learner, 20 jobs added at once: one active PCE holding the single active masters CE', async () => {
      const key = uniqueKey('seat-r');
      const acc = await announceLearner(t, key);
      await enrollEverywhere([key]);
      for (const p of programs) expect((await peOf(t, p.program_uuid, key))!.user_id).toBe(acc.user_id);
      const done = await race(() => [{ student_key: key, status: 'active' }]);
      const winner = expectOneWinner(
        singleResults(done, () => key),
        done,
      );
      const ces = await cesOf(t, acc.user_id, COURSE);
      expect(ces).toHaveLength(1);
      expect(ces[0]).toMatchObject({ mode: 'masters', is_active: true });
      const pces = await pcesOfLearner(t, key, COURSE);
      expect(pces.map((p) => [p.program_uuid, p.status, p.course_enrollment_id])).toEqual([
        [programs[winner]!.program_uuid, 'active', ces[0]!.id],
      ]);
      const [{ n }] = (await t.sql`
        select count(*)::int as n from history where entity = 'course_enrollment' and entity_id = ${ces[0]!.id}`) as any;
      expect(n).toBe(1);
    });

    it("each job spelling the key its own way: one active, the conflicts answered in each job's spelling", async () => {
      const key = uniqueKey('Seat-Case');
      await enrollEverywhere([key]);
      const spell = (i: number) =>
        i % 3 === 0 ? key.toUpperCase() : i % 3 === 1 ? key.toLowerCase() : ` ${key} `.trim();
      const done = await race((i) => [{ student_key: spell(i), status: 'active' }]);
      expectOneWinner(singleResults(done, spell), done);
      expect((await pcesOfLearner(t, key, COURSE)).filter((p) => p.status === 'active')).toHaveLength(1);
    });

    it('inactive PCEs in all 20 programs, 20 updates to active at once: exactly one becomes active', async () => {
      const key = uniqueKey('seat-u');
      const acc = await announceLearner(t, key);
      await enrollEverywhere([key]);
      for (const p of programs)
        await enrollCourseOk(t, p.program_uuid, COURSE, [{ student_key: key, status: 'inactive' }]);
      const ce = (await cesOf(t, acc.user_id, COURSE))[0]!;
      expect(ce).toMatchObject({ mode: 'masters', is_active: false });
      const done = await race(() => [{ student_key: key, status: 'active' }], 'update');
      const winner = expectOneWinner(
        singleResults(done, () => key),
        done,
      );
      const pces = await pcesOfLearner(t, key, COURSE);
      expect(pces).toHaveLength(PROGRAMS);
      expect(pces.filter((p) => p.status === 'active').map((p) => p.program_uuid)).toEqual([
        programs[winner]!.program_uuid,
      ]);
      expect(pces.every((p) => p.course_enrollment_id === ce.id)).toBe(true);
      expect(await cesOf(t, acc.user_id, COURSE)).toEqual([{ ...ce, mode: 'masters', is_active: true }]);
      const [{ n }] = (await t.sql`
        select count(*)::int as n from history
        where entity = 'program_course_enrollment' and action = 'changed'
          and entity_id in (select id from program_course_enrollments where course_key = ${COURSE}
                            and program_enrollment_id in (select id from program_enrollments where lower(student_key) = ${key.toLowerCase()}))`) as any;
      expect(n).toBe(1);
    });

    it('20 jobs, each activating the same 25 learners (some realized): each learner active in exactly one program', async () => {
      const keys = Array.from({ length: 25 }, () => uniqueKey('seat-m'));
      const accounts = new Map<string, number>();
      for (const k of keys.slice(0, 8)) accounts.set(k, (await announceLearner(t, k)).user_id);
      await enrollEverywhere(keys);
      // Each job lists the learners in its own order, so the jobs' lock sets overlap differently.
      const done = await race((i) => {
        const rotated = [...keys.slice(i % keys.length), ...keys.slice(0, i % keys.length)];
        return (i % 2 ? rotated.reverse() : rotated).map((k) => ({ student_key: k, status: 'active' }));
      });
      for (const d of done) {
        expect(Object.keys(d.result.results).sort()).toEqual([...keys].sort());
        for (const r of Object.values(d.result.results)) expect(['active', 'conflict']).toContain(r);
      }
      for (const k of keys) {
        const winners = done.map((d, i) => (d.result.results[k] === 'active' ? i : -1)).filter((i) => i >= 0);
        expect(winners, k).toHaveLength(1);
        const pces = await pcesOfLearner(t, k, COURSE);
        expect(pces.map((p) => [p.program_uuid, p.status])).toEqual([[programs[winners[0]!]!.program_uuid, 'active']]);
        const user = accounts.get(k);
        if (user !== undefined) {
          const ces = await cesOf(t, user, COURSE);
          expect(ces).toHaveLength(1);
          expect(ces[0]).toMatchObject({ mode: 'masters', is_active: true });
          expect(pces[0]!.course_enrollment_id).toBe(ces[0]!.id);
        }
      }
    });

    it('20 single adds with Promise.all, mixed with inactive writes: one active at the end', async () => {
      const key = uniqueKey('seat-p');
      await enrollEverywhere([key]);
      // Half the jobs ask for active, half for inactive: inactive never conflicts.
      const jobs = await Promise.all(
        programs.map((p, i) =>
          t.add('enrollments', 'write-program-course-enrollments', {
            program_uuid: p.program_uuid,
            course_key: COURSE,
            action: 'create_or_update',
            enrollments: [{ student_key: key, status: i % 2 ? 'inactive' : 'active' }],
          }),
        ),
      );
      const done = await Promise.all(jobs.map((j) => t.wait<WriteResult>(j, 180_000)));
      const results = done.map((d) => {
        expect(d.state, d.failedReason).toBe('completed');
        return d.result.results[key];
      });
      expect(results.filter((_, i) => i % 2 === 1).every((r) => r === 'inactive')).toBe(true);
      const asked = results.filter((_, i) => i % 2 === 0);
      expect(asked.filter((r) => r === 'active')).toHaveLength(1);
      expect(asked.filter((r) => r === 'conflict')).toHaveLength(PROGRAMS / 2 - 1);
      const pces = await pcesOfLearner(t, key, COURSE);
      expect(pces.filter((p) => p.status === 'active')).toHaveLength(1);
      expect(pces.filter((p) => p.status === 'inactive')).toHaveLength(PROGRAMS / 2);
    });

    it("account-created racing with the writes that create the learners' PEs: every PE ends linked (SPEC rules 5 and 9)", async () => {
      const keys = Array.from({ length: 20 }, () => uniqueKey('race-acc'));
      const users = keys.map((_, i) => 7_000_000 + Math.floor(Math.random() * 1_000_000) * 100 + i);
      const adds = keys.flatMap((k, i) => [
        t.add('enrollments', 'write-program-enrollments', {
          program_uuid: programs[i % 4]!.program_uuid,
          action: 'create',
          enrollments: [{ student_key: k, status: 'enrolled' }],
        }),
        t.add('accounts', 'account-created', {
          event_id: `race-${k}`,
          user_id: users[i],
          username: `race-${users[i]}`,
          identities: [{ organization_key: programs[0]!.organization_key, external_user_key: k.toUpperCase() }],
        }),
      ]);
      const jobs = await Promise.all(adds);
      const done = await Promise.all(jobs.map((j) => t.wait(j, 180_000)));
      for (const d of done) expect(d.state, d.failedReason).toBe('completed');
      for (const [i, k] of keys.entries()) {
        expect((await peOf(t, programs[i % 4]!.program_uuid, k))!.user_id, k).toBe(users[i]);
      }
    });

    it('Postgres holds no learner with two active PCEs in one course, and the history replays', async () => {
      expect(await learnersWithTwoActiveSeats(t)).toBe(0);
      await expectHistoryReplaysToState(t);
    });
  });
}
