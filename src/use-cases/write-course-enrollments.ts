import type { Tx } from '../db/client.js';
import { insertHistory, type JobStamp } from '../db/history.js';
import { lockLearners } from '../db/learners.js';
import {
  activeInCourseElsewhere,
  type CourseWriteRow,
  enrollmentsInCourse,
  insertPces,
  updatePceStatuses,
} from '../db/program-course-enrollments.js';
import { courseEffectsOf, type PceChange } from '../domain/course-effects.js';
import { pairKey } from '../domain/course-enrollment.js';
import { type CourseRecord, planCourseWrites } from '../domain/course-enrollment-writes.js';
import type { HistoryRow } from '../domain/history.js';
import type { Program } from '../domain/program.js';
import type { WriteAction } from '../domain/program-enrollment-writes.js';
import { staffRoleChanges } from '../domain/staff-roles.js';
import { isCourseStatus } from '../domain/statuses.js';
import type { Logger } from '../log.js';
import type { ChunkedWork } from './chunked-work.js';
import { applyCourseEffects, changeStaffRoles } from './course-access.js';
import { linkWaitingOfKnownLearners } from './linking.js';

export interface CourseEnrollmentsWrite {
  program: Program;
  /** The course's own key, resolved already. */
  courseKey: string;
  records: readonly CourseRecord[];
  action: WriteAction;
  stamp: JobStamp;
}

/**
 * One course's bulk write (docs/contract.md `write-program-course-enrollments`), shared by the
 * course write job and the course CSV upload, which writes each of its courses so.
 */
export function courseEnrollmentsWrite(write: CourseEnrollmentsWrite, log: Logger): ChunkedWork<CourseRecord> {
  const org = write.program.organizationKey;
  return {
    records: write.records,
    tables: ['program_course_enrollments', 'course_enrollments', 'learners'],
    duplicated: () => 'duplicated',
    failed: () => 'internal-error',
    lockPairs: async (_db, chunk) =>
      chunk.map((r) => ({ organizationKey: org, studentKeyLower: r.lower, courseKey: write.courseKey })),
    applyChunk: (tx, chunk) => writeCourseEnrollmentsChunk(tx, write, chunk, log),
  };
}

async function writeCourseEnrollmentsChunk(
  tx: Tx,
  write: CourseEnrollmentsWrite,
  chunk: readonly CourseRecord[],
  log: Logger,
): Promise<Record<string, string>> {
  const { program, courseKey, action, stamp } = write;
  const org = program.organizationKey;
  const lowers = chunk.map((r) => r.lower);
  const known = await lockLearners(
    tx,
    chunk.map((r) => ({ organizationKey: org, studentKey: r.sent, studentKeyLower: r.lower })),
  );
  const elsewhere = new Set(await activeInCourseElsewhere(tx, program.programUuid, org, courseKey, lowers));
  const planOn = (rows: CourseWriteRow[]) =>
    planCourseWrites(chunk, action, {
      enrollments: new Map(rows.map((r) => [r.lower, { peId: r.peId, userId: r.userId }])),
      pces: new Map(
        rows.filter((r) => r.pceId !== null).map((r) => [r.lower, { id: r.pceId!, status: r.status!, ceId: r.ceId }]),
      ),
      activeElsewhere: elsewhere,
    });
  let rows = await enrollmentsInCourse(tx, program.programUuid, courseKey, lowers);
  let plan = planOn(rows);
  // A write to a waiting PE of a learner whose account is now known links it first (rule 5). A
  // record that ends in an error is no write: it changes nothing (rules 1 and 8), so its learner's
  // PE stays as it was. Linking changes none of the checks, only the accounts the plan writes for.
  const written = chunk.filter((r) => isCourseStatus(plan.results[r.sent]!)).map((r) => r.lower);
  if (await linkWaitingOfKnownLearners(tx, program.programUuid, org, written, known, stamp, log)) {
    rows = await enrollmentsInCourse(tx, program.programUuid, courseKey, lowers);
    plan = planOn(rows);
  }

  const history: HistoryRow[] = [];
  // 1. Status changes of existing PCEs, before their CEs are looked at.
  if (plan.updates.length) {
    await updatePceStatuses(
      tx,
      plan.updates.map((x) => ({ id: x.id, status: x.to })),
    );
    for (const x of plan.updates) {
      history.push({
        entity: 'program_course_enrollment',
        entityId: x.id,
        programEnrollmentId: x.peId,
        action: 'changed',
        changes: { status: [x.from, x.to] },
        courseKey,
      });
    }
  }
  // 2. Course enrollments of realized learners; new PCEs go by placeholder ids.
  const pceChanges: PceChange[] = [
    ...plan.updates.map(
      (x): PceChange => ({ on: 'status', pceId: x.id, userId: x.userId, ceId: x.ceId, courseKey, status: x.to }),
    ),
    ...plan.creates.map(
      (x, i): PceChange => ({ on: 'created', pceId: -(i + 1), userId: x.userId, courseKey, status: x.status }),
    ),
  ];
  const { ceIds } = await applyCourseEffects(tx, courseEffectsOf(pceChanges), stamp, log);
  // 3. New PCEs.
  const pceIdOf = new Map(rows.filter((r) => r.pceId !== null).map((r) => [r.lower, r.pceId!]));
  if (plan.creates.length) {
    const c = plan.creates;
    const created = await insertPces(
      tx,
      courseKey,
      org,
      c.map((x) => ({
        peId: x.peId,
        status: x.status,
        ceId: x.userId === null ? null : ceIds.get(pairKey(x.userId, courseKey))!,
        lower: x.record.lower,
      })),
    );
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
        courseKey,
      });
    }
  }
  await insertHistory(tx, history, stamp);
  // 4. Staff roles: real ones for realized learners, pending ones for waiting learners.
  const userOf = new Map(rows.map((r) => [r.lower, r.userId]));
  await changeStaffRoles(
    tx,
    courseKey,
    org,
    staffRoleChanges(
      plan.staff.map((s) => ({ grant: s.grant, userId: userOf.get(s.lower) ?? null, pceId: pceIdOf.get(s.lower)! })),
    ),
    stamp,
  );
  return plan.results;
}
