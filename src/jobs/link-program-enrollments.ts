import { applyCourseEnrollmentEffects } from '../db/course-enrollments.js';
import { insertHistory, type JobStamp } from '../db/history.js';
import { claimChunk, findResult, loadChunks, storeChunk, storeResult } from '../db/job-ledger.js';
import { linkProgramEnrollments, lockLearners } from '../db/learners.js';
import type { CourseEffect } from '../domain/course-enrollment.js';
import { checkLink, linkErrors } from '../domain/explicit-links.js';
import type { CourseStatus } from '../domain/statuses.js';
import { separateDuplicates } from '../domain/write-results.js';
import { type LinkProgramEnrollmentsPayload, linkProgramEnrollmentsPayload } from '../queue/payloads.js';
import type { JobHandler } from './context.js';
import { coerceError, isTransient, LockBusyError } from './errors.js';
import { lowerKeys, requireProgram } from './program-lookup.js';

export interface LinkResult {
  errors: Record<string, string>;
}

/**
 * `link-program-enrollments`: each link in its own transaction (one failing key leaves the others
 * linked). Relinking first unlinks the previous account. A link also makes the account known for
 * the learner, as `account-created` would, without touching the learner's other waiting PEs.
 * Each key's outcome is recorded with its transaction, so a run after a crash skips it.
 */
export const linkProgramEnrollmentsJob: JobHandler<LinkProgramEnrollmentsPayload, LinkResult> = {
  schema: linkProgramEnrollmentsPayload,
  async run(payload, ctx) {
    const { sql } = ctx.database;
    const earlier = await findResult<LinkResult>(sql, ctx.key);
    if (earlier) return earlier;
    const program = await requireProgram(sql, payload.program_uuid);
    const org = program.organizationKey;
    const stamp: JobStamp = { jobId: ctx.jobId, requestedBy: null, recordEvents: ctx.config.EVENT_BUS === 'on' };

    const lowers = await lowerKeys(
      sql,
      payload.links.map((l) => l.student_key),
    );
    const links = payload.links.map((l, index) => ({
      index,
      sent: l.student_key,
      lower: lowers[index]!,
      username: l.username,
    }));
    const { unique, duplicated } = separateDuplicates(links);
    // Null prototype: a student key may be any string, `__proto__` included.
    const errors: Record<string, string> = Object.create(null);
    for (const key of duplicated) errors[key] = linkErrors.givenTwice(key);

    const finished = await loadChunks(sql, ctx.key);
    for (const link of unique) {
      const recorded = finished.get(link.index);
      if (recorded) {
        Object.assign(errors, recorded.results);
        continue;
      }
      const courses = await sql<{ courseKey: string }[]>`
        select pce.course_key as "courseKey" from program_enrollments pe
        join program_course_enrollments pce on pce.program_enrollment_id = pe.id
        where pe.program_uuid = ${program.programUuid} and pe.student_key_lower = ${link.lower}`;
      const lease = await ctx.locks.acquire(
        courses.map((c) => ({ organizationKey: org, studentKeyLower: link.lower, courseKey: c.courseKey })),
      );
      if (!lease) throw new LockBusyError();
      try {
        const outcome = await sql
          .begin(async (tx) => {
            const claim = await claimChunk(tx, ctx.key, link.index, 1);
            if (!claim.claimed) return claim.results;
            await lockLearners(tx, [{ organizationKey: org, studentKey: link.sent, studentKeyLower: link.lower }]);
            const [account] = await tx<
              { userId: number }[]
            >`select user_id as "userId" from accounts where username = ${link.username}`;
            const [enrollment] = await tx<{ id: number; userId: number | null; studentKey: string }[]>`
              select id, user_id as "userId", student_key as "studentKey" from program_enrollments
              where program_uuid = ${program.programUuid} and student_key_lower = ${link.lower}`;
            const [held] = account
              ? await tx<{ id: number }[]>`
                  select id from program_enrollments where program_uuid = ${program.programUuid} and user_id = ${account.userId}`
              : [];
            const error = checkLink(program.programUuid, link.sent, link.username, {
              userId: account?.userId ?? null,
              enrollment: enrollment ?? null,
              accountEnrollmentId: held?.id ?? null,
            });
            const result: Record<string, string> = Object.create(null);
            if (error) result[link.sent] = error;
            if (!error) {
              if (enrollment!.userId !== null) await unlink(tx, enrollment!.id, enrollment!.userId, stamp, ctx.log);
              await linkProgramEnrollments(tx, [{ peId: enrollment!.id, userId: account!.userId }], stamp, ctx.log);
              await tx`
                update learners set user_id = ${account!.userId}
                where organization_key = ${org} and student_key_lower = ${link.lower}`;
            }
            await storeChunk(tx, ctx.key, link.index, result);
            return result;
          })
          .catch(async (raw: unknown) => {
            const err = coerceError(raw);
            if (isTransient(err)) throw err;
            // A fault that retrying does not cure rolls back this key only (as Open edX does).
            ctx.log.warn({ program: program.programUuid, err: err.message }, 'link failed');
            const result: Record<string, string> = Object.create(null);
            result[link.sent] = `${err.name}: ${err.message}`;
            await sql.begin(async (tx) => {
              if ((await claimChunk(tx, ctx.key, link.index, 1)).claimed)
                await storeChunk(tx, ctx.key, link.index, result);
            });
            return result;
          });
        Object.assign(errors, outcome);
      } finally {
        await lease.release();
      }
    }
    return sql.begin((tx) => storeResult(tx, ctx.key, { errors }));
  },
};

/**
 * Detaches a realized PE from its account: its PCEs let go of their CEs (each CE no other active
 * PCE holds is deactivated and moved to audit where the course offers it), then the PE waits.
 * A PCE without a CE is simply left as it is (Open edX crashed on it, Q7).
 */
async function unlink(
  tx: Parameters<typeof lockLearners>[0],
  peId: number,
  userId: number,
  stamp: JobStamp,
  log: Parameters<typeof applyCourseEnrollmentEffects>[3],
) {
  const pces = await tx<{ id: number; courseKey: string; status: CourseStatus; ceId: number | null }[]>`
    select id, course_key as "courseKey", status, course_enrollment_id as "ceId" from program_course_enrollments
    where program_enrollment_id = ${peId} order by id`;
  const effects: CourseEffect[] = pces
    .filter((p) => p.ceId !== null)
    .map((p) => ({ kind: 'detach', pceId: p.id, userId, courseKey: p.courseKey }));
  await applyCourseEnrollmentEffects(tx, effects, stamp, log);
  await tx`update program_enrollments set user_id = null, modified_at = now() where id = ${peId}`;
  await insertHistory(
    tx,
    [
      {
        entity: 'program_enrollment',
        entityId: peId,
        programEnrollmentId: peId,
        action: 'changed',
        changes: { user_id: [userId, null] },
      },
    ],
    stamp,
  );
}
