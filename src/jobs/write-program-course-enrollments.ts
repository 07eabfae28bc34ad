import type { Tx } from '../db/client.js';
import { applyCourseEnrollmentEffects } from '../db/course-enrollments.js';
import { insertHistory, type JobStamp } from '../db/history.js';
import { linkWaitingOfKnownLearners, lockLearners } from '../db/learners.js';
import { insertOutboxEvents } from '../db/outbox.js';
import { staffRoleEvents } from '../domain/course-access-events.js';
import { type CourseEffect, pairKey } from '../domain/course-enrollment.js';
import { type CourseRecord, planCourseWrites } from '../domain/course-enrollment-writes.js';
import type { HistoryRow } from '../domain/history.js';
import { type Program, resolveCourseKey } from '../domain/program.js';
import type { WriteAction } from '../domain/program-enrollment-writes.js';
import type { CourseStatus } from '../domain/statuses.js';
import type { WriteResult } from '../domain/write-results.js';
import { type WriteProgramCourseEnrollmentsPayload, writeProgramCourseEnrollmentsPayload } from '../queue/payloads.js';
import { earlierResult, runChunkedWrite } from './chunked-write.js';
import type { JobContext, JobHandler } from './context.js';
import { JobRejectedError } from './errors.js';
import { lowerKeys, requireProgram } from './program-lookup.js';

export const writeProgramCourseEnrollmentsJob: JobHandler<WriteProgramCourseEnrollmentsPayload, WriteResult> = {
  schema: writeProgramCourseEnrollmentsPayload,
  async run(payload, ctx) {
    const { sql } = ctx.database;
    const earlier = await earlierResult<WriteResult>(ctx, payload.enrollments.length);
    if (earlier) return earlier;
    const program = await requireProgram(sql, payload.program_uuid);
    const courseKey = resolveCourseKey(program, payload.course_key);
    if (courseKey === null)
      throw new JobRejectedError(`course ${payload.course_key} is not in program ${program.programUuid}`);

    const lowers = await lowerKeys(
      sql,
      payload.enrollments.map((e) => e.student_key),
    );
    const records: CourseRecord[] = payload.enrollments.map((e, index) => ({
      index,
      sent: e.student_key,
      lower: lowers[index]!,
      status: e.status,
      courseStaff: e.course_staff ?? null,
    }));
    return writeCourseEnrollments(ctx, {
      jobName: 'write-program-course-enrollments',
      program,
      courseKey,
      records,
      action: payload.action,
      stamp: {
        jobId: ctx.jobId,
        requestedBy: payload.requested_by ?? null,
        recordEvents: ctx.config.EVENT_BUS === 'on',
      },
    });
  },
};

export interface CourseEnrollmentsWrite {
  /** The job doing the write, for metrics. */
  jobName: 'write-program-course-enrollments' | 'write-program-course-enrollments-upload';
  program: Program;
  /** The course's own key, resolved already. */
  courseKey: string;
  records: readonly CourseRecord[];
  action: WriteAction;
  stamp: JobStamp;
  /** Where the write keeps its exactly-once ledger; the job's own key unless the job writes several courses. */
  ledgerKey?: string;
}

/**
 * One course's bulk write (CONTRACT `write-program-course-enrollments`): duplicates settled over
 * `records`, then chunks applied exactly once under `ledgerKey`. Shared by the course write job
 * and the course CSV upload, which runs it once per course.
 */
export async function writeCourseEnrollments(ctx: JobContext, write: CourseEnrollmentsWrite): Promise<WriteResult> {
  const { program, courseKey, records, action, stamp } = write;
  const org = program.organizationKey;

  return runChunkedWrite(
    ctx,
    {
      name: write.jobName,
      records,
      tables: ['program_course_enrollments', 'course_enrollments', 'learners', 'history'],
      lockPairs: async (_db, chunk) =>
        chunk.map((r) => ({ organizationKey: org, studentKeyLower: r.lower, courseKey })),
      async applyChunk(tx: Tx, chunk) {
        const chunkLowers = chunk.map((r) => r.lower);
        const known = await lockLearners(
          tx,
          chunk.map((r) => ({ organizationKey: org, studentKey: r.sent, studentKeyLower: r.lower })),
        );
        // A write to a waiting PE of a learner whose account is now known links it first (SPEC 5).
        await linkWaitingOfKnownLearners(tx, program.programUuid, org, chunkLowers, known, stamp, ctx.log);
        const rows = await tx<
          {
            lower: string;
            peId: number;
            userId: number | null;
            pceId: number | null;
            status: CourseStatus | null;
            ceId: number | null;
          }[]
        >`
          select pe.student_key_lower as lower, pe.id as "peId", pe.user_id as "userId",
                 pce.id as "pceId", pce.status, pce.course_enrollment_id as "ceId"
          from unnest(${chunkLowers}::text[]) as k(lower)
          join program_enrollments pe on pe.program_uuid = ${program.programUuid} and pe.student_key_lower = k.lower
          left join program_course_enrollments pce on pce.program_enrollment_id = pe.id and pce.course_key = ${courseKey}`;
        const elsewhere = await tx<{ lower: string }[]>`
          select pce.student_key_lower as lower
          from unnest(${chunkLowers}::text[]) as k(lower)
          join program_course_enrollments pce
            on pce.organization_key = ${org} and pce.student_key_lower = k.lower and pce.course_key = ${courseKey} and pce.status = 'active'
          join program_enrollments pe on pe.id = pce.program_enrollment_id
          where pe.program_uuid <> ${program.programUuid}`;
        const plan = planCourseWrites(chunk, action, {
          enrollments: new Map(rows.map((r) => [r.lower, { peId: r.peId, userId: r.userId }])),
          pces: new Map(
            rows
              .filter((r) => r.pceId !== null)
              .map((r) => [r.lower, { id: r.pceId!, status: r.status!, ceId: r.ceId }]),
          ),
          activeElsewhere: new Set(elsewhere.map((r) => r.lower)),
        });

        const history: HistoryRow[] = [];
        // 1. Status changes of existing PCEs, before their CEs are looked at.
        if (plan.updates.length) {
          const u = plan.updates;
          await tx`
            update program_course_enrollments pce set status = v.status, modified_at = now()
            from unnest(${u.map((x) => x.id)}::bigint[], ${u.map((x) => x.to)}::text[]) as v(id, status)
            where pce.id = v.id`;
          for (const x of u) {
            history.push({
              entity: 'program_course_enrollment',
              entityId: x.id,
              programEnrollmentId: x.peId,
              action: 'changed',
              changes: { status: [x.from, x.to] },
            });
          }
        }
        // 2. Course enrollments of realized learners; new PCEs go by placeholder ids.
        const effects: CourseEffect[] = [];
        for (const x of plan.updates) {
          if (x.userId === null) continue;
          effects.push({
            kind: x.ceId === null ? 'realize' : 'status',
            pceId: x.id,
            userId: x.userId,
            courseKey,
            status: x.to,
          });
        }
        plan.creates.forEach((x, i) => {
          if (x.userId !== null)
            effects.push({ kind: 'realize', pceId: -(i + 1), userId: x.userId, courseKey, status: x.status });
        });
        const ceIds = await applyCourseEnrollmentEffects(tx, effects, stamp, ctx.log);
        // 3. New PCEs.
        const pceIdOf = new Map(rows.filter((r) => r.pceId !== null).map((r) => [r.lower, r.pceId!]));
        if (plan.creates.length) {
          const c = plan.creates;
          const ceOf = (x: (typeof c)[number]) => (x.userId === null ? null : ceIds.get(pairKey(x.userId, courseKey))!);
          const created = await tx<{ id: number; peId: number; ceId: number | null }[]>`
            insert into program_course_enrollments
              (program_enrollment_id, course_key, status, course_enrollment_id, organization_key, student_key_lower)
            select v.pe_id, ${courseKey}, v.status, v.ce_id, ${org}, v.lower
            from unnest(${c.map((x) => x.peId)}::bigint[], ${c.map((x) => x.status)}::text[],
                        ${c.map(ceOf)}::bigint[], ${c.map((x) => x.record.lower)}::text[])
              with ordinality as v(pe_id, status, ce_id, lower, n)
            order by v.n
            returning id, program_enrollment_id as "peId", course_enrollment_id as "ceId"`;
          const byPe = new Map(created.map((r) => [r.peId, r]));
          for (const x of c) {
            const row = byPe.get(x.peId)!;
            pceIdOf.set(x.record.lower, row.id);
            history.push({
              entity: 'program_course_enrollment',
              entityId: row.id,
              programEnrollmentId: x.peId,
              action: 'created',
              changes: {
                course_key: [null, courseKey],
                status: [null, x.status],
                ...(row.ceId !== null ? { course_enrollment_id: [null, row.ceId] } : {}),
              },
            });
          }
        }
        await insertHistory(tx, history, stamp);
        // 4. Staff roles: real ones for realized learners, pending ones for waiting learners.
        const userOf = new Map(rows.map((r) => [r.lower, r.userId]));
        const roles = (grant: boolean, realized: boolean) =>
          plan.staff.filter((s) => s.grant === grant && (userOf.get(s.lower) !== null) === realized);
        const roleChanges = (rows: ReadonlyArray<{ userId: number }>) =>
          rows.map((r) => ({ userId: r.userId, courseKey, orgKey: org }));
        const grantUsers = roles(true, true).map((s) => userOf.get(s.lower)!);
        const revokeUsers = roles(false, true).map((s) => userOf.get(s.lower)!);
        const grantPending = roles(true, false).map((s) => pceIdOf.get(s.lower)!);
        const revokePending = roles(false, false).map((s) => pceIdOf.get(s.lower)!);
        if (grantUsers.length) {
          const granted = await tx<{ userId: number }[]>`
            insert into course_staff_roles (user_id, course_key) select u, ${courseKey} from unnest(${grantUsers}::bigint[]) as u
            on conflict do nothing returning user_id as "userId"`;
          if (stamp.recordEvents) await insertOutboxEvents(tx, staffRoleEvents('added', roleChanges(granted)));
        }
        if (revokeUsers.length) {
          const revoked = await tx<{ userId: number }[]>`
            delete from course_staff_roles where course_key = ${courseKey} and user_id = any(${revokeUsers}::bigint[])
            returning user_id as "userId"`;
          if (stamp.recordEvents) await insertOutboxEvents(tx, staffRoleEvents('removed', roleChanges(revoked)));
        }
        if (grantPending.length) {
          await tx`insert into pending_role_assignments (program_course_enrollment_id) select unnest(${grantPending}::bigint[]) on conflict do nothing`;
        }
        if (revokePending.length) {
          await tx`delete from pending_role_assignments where program_course_enrollment_id = any(${revokePending}::bigint[])`;
        }
        return plan.results;
      },
    },
    write.ledgerKey,
  );
}
