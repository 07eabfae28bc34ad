import type { Tx } from '../db/client.js';
import { insertHistory, type JobStamp } from '../db/history.js';
import { learnerId, linkProgramEnrollments, lockLearners } from '../db/learners.js';
import type { HistoryRow } from '../domain/history.js';
import { defaultCurriculum } from '../domain/program.js';
import {
  type ExistingProgramEnrollment,
  type ProgramRecord,
  planProgramWrites,
} from '../domain/program-enrollment-writes.js';
import type { WriteResult } from '../domain/write-results.js';
import type { LearnerCourse } from '../lock/learner-course-locks.js';
import { type WriteProgramEnrollmentsPayload, writeProgramEnrollmentsPayload } from '../queue/payloads.js';
import { earlierResult, runChunkedWrite } from './chunked-write.js';
import type { JobHandler } from './context.js';
import { JobRejectedError } from './errors.js';
import { lowerKeys, requireProgram } from './program-lookup.js';

export const writeProgramEnrollmentsJob: JobHandler<WriteProgramEnrollmentsPayload, WriteResult> = {
  schema: writeProgramEnrollmentsPayload,
  async run(payload, ctx) {
    const { sql } = ctx.database;
    const earlier = await earlierResult<WriteResult>(ctx, payload.enrollments.length);
    if (earlier) return earlier;
    const program = await requireProgram(sql, payload.program_uuid);
    const curricula = new Set(program.curricula.map((c) => c.curriculumUuid));
    const problems = payload.enrollments.flatMap((e, i) =>
      e.curriculum_uuid !== undefined && !curricula.has(e.curriculum_uuid)
        ? [
            `enrollments.${i}.curriculum_uuid: ${e.curriculum_uuid} is not a curriculum of program ${program.programUuid}`,
          ]
        : [],
    );
    if (problems.length) throw new JobRejectedError(`invalid payload: ${problems.join('; ')}`);
    const fallback = defaultCurriculum(program);
    if (fallback === null && payload.enrollments.some((e) => e.curriculum_uuid === undefined)) {
      throw new JobRejectedError(`program ${program.programUuid} has no active curriculum`);
    }

    const lowers = await lowerKeys(
      sql,
      payload.enrollments.map((e) => e.student_key),
    );
    const records: ProgramRecord[] = payload.enrollments.map((e, index) => ({
      index,
      sent: e.student_key,
      lower: lowers[index]!,
      status: e.status,
      curriculumUuid: e.curriculum_uuid ?? fallback,
    }));
    const stamp: JobStamp = {
      jobId: ctx.jobId,
      requestedBy: payload.requested_by ?? null,
      recordEvents: ctx.config.EVENT_BUS === 'on',
    };
    const org = program.organizationKey;

    return runChunkedWrite(ctx, {
      name: 'write-program-enrollments',
      records,
      // A program write changes courses only when it links a waiting PE: lock those PCEs' pairs.
      tables: ['program_enrollments', 'learners', 'history'],
      async lockPairs(db, chunk): Promise<LearnerCourse[]> {
        const rows = await db<{ lower: string; courseKey: string }[]>`
          select pe.student_key_lower as lower, pce.course_key as "courseKey"
          from unnest(${chunk.map((r) => r.lower)}::text[]) as k(lower)
          join program_enrollments pe on pe.program_uuid = ${program.programUuid} and pe.student_key_lower = k.lower
          join learners l on l.organization_key = pe.organization_key and l.student_key_lower = pe.student_key_lower
          join program_course_enrollments pce on pce.program_enrollment_id = pe.id
          where pe.user_id is null and l.user_id is not null`;
        return rows.map((r) => ({ organizationKey: org, studentKeyLower: r.lower, courseKey: r.courseKey }));
      },
      async applyChunk(tx: Tx, chunk) {
        const chunkLowers = chunk.map((r) => r.lower);
        const known = await lockLearners(
          tx,
          chunk.map((r) => ({ organizationKey: org, studentKey: r.sent, studentKeyLower: r.lower })),
        );
        const existingRows = await tx<(ExistingProgramEnrollment & { lower: string })[]>`
          select pe.id, pe.student_key_lower as lower, pe.user_id as "userId", pe.status
          from unnest(${chunkLowers}::text[]) as k(lower)
          join program_enrollments pe on pe.program_uuid = ${program.programUuid} and pe.student_key_lower = k.lower`;
        const accounts = new Map<string, number>();
        for (const r of chunk) {
          const userId = known.get(learnerId({ organizationKey: org, studentKeyLower: r.lower }));
          if (userId) accounts.set(r.lower, userId);
        }
        const candidateUsers = [...new Set(accounts.values())];
        const usersInProgram = candidateUsers.length
          ? await tx<{ userId: number }[]>`
              select pe.user_id as "userId" from unnest(${candidateUsers}::bigint[]) as u(id)
              join program_enrollments pe on pe.program_uuid = ${program.programUuid} and pe.user_id = u.id`
          : [];
        const plan = planProgramWrites(chunk, payload.action, {
          existing: new Map(existingRows.map((r) => [r.lower, r])),
          accounts,
          usersInProgram: new Set(usersInProgram.map((r) => r.userId)),
        });
        if (plan.keptWaiting)
          ctx.log.warn(
            { learners: plan.keptWaiting },
            'accounts already enrolled in the program under another key: PEs kept waiting',
          );

        const history: HistoryRow[] = [];
        if (plan.creates.length) {
          const c = plan.creates;
          const created = await tx<{ id: number; lower: string }[]>`
            insert into program_enrollments (program_uuid, organization_key, student_key, user_id, curriculum_uuid, status)
            select ${program.programUuid}, ${org}, v.student_key, v.user_id, v.curriculum_uuid, v.status
            from unnest(${c.map((x) => x.record.sent)}::text[], ${c.map((x) => x.userId)}::bigint[],
                        ${c.map((x) => x.curriculumUuid)}::uuid[], ${c.map((x) => x.status)}::text[])
              with ordinality as v(student_key, user_id, curriculum_uuid, status, n)
            order by v.n
            returning id, student_key_lower as lower`;
          const idOf = new Map(created.map((row) => [row.lower, row.id]));
          c.forEach((x) => {
            const id = idOf.get(x.record.lower)!;
            history.push({
              entity: 'program_enrollment',
              entityId: id,
              programEnrollmentId: id,
              action: 'created',
              changes: {
                student_key: [null, x.record.sent],
                status: [null, x.status],
                curriculum_uuid: [null, x.curriculumUuid],
                ...(x.userId !== null ? { user_id: [null, x.userId] } : {}),
              },
            });
          });
        }
        if (plan.updates.length) {
          const u = plan.updates;
          await tx`
            update program_enrollments pe set status = v.status, modified_at = now()
            from unnest(${u.map((x) => x.id)}::bigint[], ${u.map((x) => x.to)}::text[]) as v(id, status)
            where pe.id = v.id`;
          for (const x of u) {
            if (x.from !== x.to) {
              history.push({
                entity: 'program_enrollment',
                entityId: x.id,
                programEnrollmentId: x.id,
                action: 'changed',
                changes: { status: [x.from, x.to] },
              });
            }
          }
        }
        await insertHistory(tx, history, stamp);
        await linkProgramEnrollments(tx, plan.links, stamp, ctx.log);
        return plan.results;
      },
    });
  },
};
