/**
 * SIGKILL of a worker process half way through a 100,000-record job, and during a burst of account
 * events: another process carries on within seconds, and the end state is the one a run without
 * the crash gives (every record once, one history row per change, every event's result).
 */
import { describe, expect, it } from 'vitest';
import {
  COURSE,
  enrollCourse,
  expectHistoryReplaysToState,
  learnersWithTwoActiveSeats,
  newProgram,
  uniqueKey,
} from '../support/fixtures.js';
import {
  addAccountEvents,
  addBulkWrite,
  enrollWaiting,
  measureResume,
  report,
  useScene,
  waitAllDone,
  waitUntil,
} from './support.js';

describe('SIGKILL of a worker', () => {
  const scene = useScene({ env: { WORKER_CONCURRENCY: '4' } });
  const start = () => scene.start();

  it('during a 100,000-record job: another process resumes it, every record applied once', async () => {
    const { world } = scene;
    const [first, second] = [await start(), await start()];
    const program = await newProgram(world.t);
    const total = 100_000;
    const keys = Array.from({ length: total }, () => uniqueKey('bulk'));
    const job = await addBulkWrite(world, program, keys);
    // Kill whichever process runs it, a third of the way in.
    const runner = await waitUntil(
      async () => {
        const j = await world.queues.enrollments.getJob(job.id!);
        const done = (j?.progress as { done?: number } | undefined)?.done ?? 0;
        return done >= total / 3 && j?.processedBy ? j.processedBy : undefined;
      },
      240_000,
      'a third of the job',
    );
    const victim = [first!, second!].find((p) => p.workerName === runner)!;
    const resume = await measureResume(Object.values(world.queues), victim, () => victim.kill('SIGKILL'));
    await start(); // as the supervisor would

    const done = await world.t.wait(job, 600_000);
    expect(done.state).toBe('completed');
    expect(done.result.counts).toEqual({ enrolled: total });
    const [{ pes, created, history }] = (await world.sql`
      select (select count(*)::int from program_enrollments where program_uuid = ${program.program_uuid}) as pes,
             (select count(distinct student_key)::int from program_enrollments where program_uuid = ${program.program_uuid}) as created,
             (select count(*)::int from history where entity = 'program_enrollment') as history`) as any;
    expect({ pes, created, history }).toEqual({ pes: total, created: total, history: total });
    report({
      scenario: 'kill mid 100,000-record job',
      killed: 1,
      jobs: 1,
      lost: 0,
      duplicated: history - total,
      violations: 0,
      resume_s: [resume],
    });
    expect(resume).toBeLessThan(10);
  });

  it('during a burst of account events: every event applied once, every waiting enrollment linked', async () => {
    const { world } = scene;
    const alive = scene.processes.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
    const program = await newProgram(world.t);
    // Waiting PEs with a PCE each, then one account-created per learner.
    const learners = await enrollWaiting(world, program, 400, 'burst');
    const pces = await enrollCourse(
      world.t,
      program.program_uuid,
      COURSE,
      learners.map((l) => ({ student_key: l.key, status: 'active' })),
    );
    expect(pces.state).toBe('completed');

    const ids = await addAccountEvents(world, program, learners);
    await waitUntil(async () => (await world.queues.accounts.getCompletedCount()) >= 50, 60_000, '50 events');
    const victim = (await waitUntil(
      async () => {
        for (const j of await world.queues.accounts.getActive()) {
          const p = alive.find((s) => s.workerName === j.processedBy);
          if (p) return p;
        }
        return undefined;
      },
      30_000,
      'an active event',
      20,
    ))!;
    const resume = await measureResume(Object.values(world.queues), victim, () => victim.kill('SIGKILL'));
    await start();

    const outcome = await waitAllDone(world.queues.accounts, ids, 300_000);
    expect(outcome.failed).toEqual([]);
    expect(outcome.missing).toEqual([]);
    // Each event linked its learner exactly once: one result naming the learner, one link in history.
    const linkedBy = new Map<string, number>();
    for (const id of ids) {
      const j = (await world.queues.accounts.getJob(id))!;
      const linked = (j.returnvalue as { linked: Array<{ student_key: string }> }).linked;
      for (const l of linked) linkedBy.set(l.student_key, (linkedBy.get(l.student_key) ?? 0) + 1);
    }
    expect(linkedBy.size).toBe(learners.length);
    expect([...linkedBy.values()].every((n) => n === 1)).toBe(true);
    const [{ unlinked, ces, withoutCe, links }] = (await world.sql`
      select
        (select count(*)::int from program_enrollments where program_uuid = ${program.program_uuid} and user_id is null) as unlinked,
        (select count(*)::int from course_enrollments where course_key = ${COURSE} and is_active and mode = 'masters') as ces,
        (select count(*)::int from program_course_enrollments pce join program_enrollments pe on pe.id = pce.program_enrollment_id
          where pe.program_uuid = ${program.program_uuid} and pce.course_enrollment_id is null) as "withoutCe",
        (select count(*)::int from history where entity = 'program_enrollment' and action = 'changed'
          and changes ? 'user_id') as links`) as any;
    expect({ unlinked, ces, withoutCe }).toEqual({ unlinked: 0, ces: learners.length, withoutCe: 0 });
    const violations = await learnersWithTwoActiveSeats(world.t);
    await expectHistoryReplaysToState(world.t);
    report({
      scenario: 'kill during account burst',
      killed: 1,
      jobs: ids.length + 2,
      lost: outcome.missing.length,
      duplicated: links - learners.length,
      violations,
      resume_s: [resume],
    });
    expect(links).toBe(learners.length);
    expect(violations).toBe(0);
    expect(resume).toBeLessThan(10);
  });
});
