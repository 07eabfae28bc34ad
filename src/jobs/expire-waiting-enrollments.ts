import { claimResult, findResult, storeResult } from '../db/job-ledger.js';
import { lockLearners } from '../db/learners.js';
import { deletePublishedEvents } from '../db/outbox.js';
import { type ExpireWaitingEnrollmentsPayload, expireWaitingEnrollmentsPayload } from '../queue/payloads.js';
import type { JobHandler } from './context.js';

export interface ExpiryResult {
  removed: { program_enrollments: number; program_course_enrollments: number };
}

/** How long finished jobs are remembered for re-submission under the same jobId (CONTRACT: 7 days). */
const JOB_RESULT_RETENTION_DAYS = 7;
/** Account and course events are remembered longer: the LMS may replay old events. */
const EVENT_RESULT_RETENTION_DAYS = 90;

/**
 * `expire-waiting-enrollments` (SPEC rule 11): deletes waiting PEs whose own modification time is
 * `expiration_days` old or older, with their PCEs, pending roles (by cascade) and history. Realized
 * PEs never expire. A write that refreshes a PE at the same moment wins: the row lock makes the
 * delete re-check the PE's age after the write commits. It also forgets job results and published
 * outbound events past their retention, as part of the same daily run.
 */
export const expireWaitingEnrollmentsJob: JobHandler<ExpireWaitingEnrollmentsPayload, ExpiryResult> = {
  schema: expireWaitingEnrollmentsPayload,
  async run(payload, ctx) {
    const { sql } = ctx.database;
    const earlier = await findResult<ExpiryResult>(sql, ctx.key);
    if (earlier) return earlier;
    // Beyond a few thousand years every timestamp is younger; past that Postgres's range ends.
    const seconds = Math.min(payload.expiration_days * 86_400, 1e11);
    return sql.begin(async (tx) => {
      const claim = await claimResult<ExpiryResult>(tx, ctx.key);
      if (!claim.claimed) return claim.result;
      // The learners' locks first, as every write takes them: a write that got there before commits
      // (and refreshes its PE, which then no longer qualifies); one that comes after waits.
      const candidates = await tx<{ org: string; key: string; lower: string }[]>`
        select organization_key as org, student_key as key, student_key_lower as lower from program_enrollments
        where user_id is null and modified_at <= now() - make_interval(secs => ${seconds})`;
      await lockLearners(
        tx,
        candidates.map((c) => ({ organizationKey: c.org, studentKey: c.key, studentKeyLower: c.lower })),
      );
      const expired = await tx<{ id: number; programUuid: string }[]>`
        select id, program_uuid as "programUuid" from program_enrollments
        where user_id is null and modified_at <= now() - make_interval(secs => ${seconds})
        order by id
        for update`;
      const ids = expired.map((e) => e.id);
      let pces = 0;
      if (ids.length) {
        const courses = await tx<{ id: number; peId: number; courseKey: string }[]>`
          select id, program_enrollment_id as "peId", course_key as "courseKey" from program_course_enrollments
          where program_enrollment_id = any(${ids}::bigint[]) order by id`;
        pces = courses.length;
        const programOf = new Map(expired.map((e) => [e.id, e.programUuid]));
        for (const e of expired) ctx.log.info({ pe: e.id, program: e.programUuid }, 'found expired program_enrollment');
        for (const c of courses)
          ctx.log.info(
            { pce: c.id, program: programOf.get(c.peId), course: c.courseKey },
            'found expired program_course_enrollment',
          );
        // Their history goes with them (Open edX does the same), so nothing about them remains.
        await tx`delete from history where program_enrollment_id = any(${ids}::bigint[])`;
        await tx`delete from program_enrollments where id = any(${ids}::bigint[])`;
      }
      // Learners with neither an account nor an enrollment left: nothing needs their key any more.
      await tx`
        delete from learners l
        where l.user_id is null
          and not exists (select 1 from program_enrollments pe
                          where pe.organization_key = l.organization_key and pe.student_key_lower = l.student_key_lower)`;
      await tx`
        delete from job_results
        where (key like 'account-created/%' or key like 'course-enrollment-changed/%')
          and finished_at < now() - make_interval(days => ${EVENT_RESULT_RETENTION_DAYS})`;
      await tx`
        delete from job_results
        where key not like 'account-created/%' and key not like 'course-enrollment-changed/%'
          and finished_at < now() - make_interval(days => ${JOB_RESULT_RETENTION_DAYS})`;
      await tx`delete from job_chunks where finished_at < now() - make_interval(days => ${JOB_RESULT_RETENTION_DAYS})`;
      await tx`delete from submitted_jobs where created_at < now() - make_interval(days => ${JOB_RESULT_RETENTION_DAYS})`;
      await deletePublishedEvents(tx, ctx.config.EVENT_BUS_RETENTION_DAYS);
      const result = { removed: { program_enrollments: ids.length, program_course_enrollments: pces } };
      ctx.log.info(
        { expirationDays: payload.expiration_days, ...result.removed },
        'expired waiting enrollments removed',
      );
      await storeResult(tx, ctx.key, result);
      return result;
    });
  },
};
