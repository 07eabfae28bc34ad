import type { WriteProgramEnrollmentsPayload } from '../contract/payloads.js';
import type { Queryable, Tx } from '../db/client.js';
import { insertHistory, type JobStamp } from '../db/history.js';
import { learnerId, lockLearners, lowerKeys } from '../db/learners.js';
import { coursePairsOfLearners } from '../db/program-course-enrollments.js';
import {
  insertProgramEnrollments,
  programEnrollmentsOfAccounts,
  programEnrollmentsOfKeys,
  updateProgramEnrollmentStatuses,
} from '../db/program-enrollments.js';
import { JobRejectedError } from '../domain/errors.js';
import type { HistoryRow } from '../domain/history.js';
import { defaultCurriculum, type Program } from '../domain/program.js';
import { type ProgramRecord, planProgramWrites } from '../domain/program-enrollment-writes.js';
import type { Logger } from '../log.js';
import type { ChunkedWork } from './chunked-work.js';
import { realizeProgramEnrollments } from './linking.js';

/**
 * `write-program-enrollments` (docs/contract.md "Queues"): checks the curricula of the payload
 * against the program, then gives the chunked write of its records.
 */
export async function programEnrollmentsWrite(
  sql: Queryable,
  program: Program,
  payload: WriteProgramEnrollmentsPayload,
  stamp: JobStamp,
  log: Logger,
): Promise<ChunkedWork<ProgramRecord>> {
  const curricula = new Set(program.curricula.map((c) => c.curriculumUuid));
  const problems = payload.enrollments.flatMap((e, i) =>
    e.curriculum_uuid !== undefined && !curricula.has(e.curriculum_uuid)
      ? [`enrollments.${i}.curriculum_uuid: ${e.curriculum_uuid} is not a curriculum of program ${program.programUuid}`]
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
  const org = program.organizationKey;
  return {
    records,
    tables: ['program_enrollments', 'learners'],
    duplicated: () => 'duplicated',
    failed: () => 'internal-error',
    // A program write changes courses only when it links a waiting PE: lock those PCEs' pairs.
    lockPairs: (db, chunk) =>
      coursePairsOfLearners(
        db,
        chunk.map((r) => ({ organizationKey: org, studentKeyLower: r.lower })),
        { programUuid: program.programUuid, waitingOnly: true },
      ),
    applyChunk: (tx, chunk) => writeProgramEnrollmentsChunk(tx, program, payload.action, chunk, stamp, log),
  };
}

async function writeProgramEnrollmentsChunk(
  tx: Tx,
  program: Program,
  action: WriteProgramEnrollmentsPayload['action'],
  chunk: readonly ProgramRecord[],
  stamp: JobStamp,
  log: Logger,
): Promise<Record<string, string>> {
  const org = program.organizationKey;
  const known = await lockLearners(
    tx,
    chunk.map((r) => ({ organizationKey: org, studentKey: r.sent, studentKeyLower: r.lower })),
  );
  const existing = await programEnrollmentsOfKeys(
    tx,
    program.programUuid,
    chunk.map((r) => r.lower),
  );
  const accounts = new Map<string, number>();
  for (const r of chunk) {
    const userId = known.get(learnerId({ organizationKey: org, studentKeyLower: r.lower }));
    if (userId) accounts.set(r.lower, userId);
  }
  const held = await programEnrollmentsOfAccounts(tx, [...new Set(accounts.values())], program.programUuid);
  const plan = planProgramWrites(chunk, action, {
    existing: new Map(existing.map((r) => [r.lower, r])),
    accounts,
    usersInProgram: new Set(held.map((r) => r.userId)),
  });
  if (plan.keptWaiting)
    log.warn(
      { learners: plan.keptWaiting },
      'accounts already enrolled in the program under another key: PEs kept waiting',
    );

  const history: HistoryRow[] = [];
  if (plan.creates.length) {
    const c = plan.creates;
    const created = await insertProgramEnrollments(
      tx,
      program.programUuid,
      org,
      c.map((x) => ({
        studentKey: x.record.sent,
        userId: x.userId,
        curriculumUuid: x.curriculumUuid,
        status: x.status,
      })),
    );
    const idOf = new Map(created.map((row) => [row.lower, row.id]));
    for (const x of c) {
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
    }
  }
  if (plan.updates.length) {
    await updateProgramEnrollmentStatuses(
      tx,
      plan.updates.map((x) => ({ id: x.id, status: x.to })),
    );
    for (const x of plan.updates) {
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
  await realizeProgramEnrollments(tx, plan.links, stamp, log);
  return plan.results;
}
