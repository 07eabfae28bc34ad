import type { HistoryRow } from '../domain/history.js';
import type { Tx } from './client.js';

/** Who made a change: the BullMQ job, its queue and the producer's `requested_by`. */
export interface JobStamp {
  jobId: string;
  queue: string;
  requestedBy: string | null;
  /** EVENT_BUS=on: the change also writes its outbound events (contract.md "Outbound events"). */
  recordEvents: boolean;
}

/**
 * The stamps of a batch of account events, at most one event an account (src/jobs/account-created.ts):
 * each change is stamped with the event of the account it concerns.
 */
export interface AccountStamps {
  recordEvents: boolean;
  of(userId: number): JobStamp;
}

/** Who made the changes of one transaction: one job, or a batch of account events. */
export type Stamps = JobStamp | AccountStamps;

/** The stamp of the changes that concern account `userId`. */
export function stampOfAccount(stamps: Stamps, userId: number): JobStamp {
  return 'of' in stamps ? stamps.of(userId) : stamps;
}

/**
 * Writes history rows in one statement, in the order given. PCE and CE rows name their course
 * (`course_key`): a row that only changes a status or a mode would otherwise name the course by an
 * internal id. Neither key ever changes, so it is taken as the writer gives it (`courseKey`: the
 * bulk writes have it, which spares a primary-key look-up a row), else read from the row itself,
 * or from its `changes` when the row is already gone.
 */
export async function insertHistory(
  tx: Tx,
  rows: readonly HistoryRow[],
  stamp: JobStamp | readonly JobStamp[],
): Promise<void> {
  if (rows.length === 0) return;
  // One stamp for every row, or each row's own (a batch of account events).
  const stampOf = (i: number) => ('jobId' in stamp ? stamp : stamp[i]!);
  await tx`
    insert into history (entity, entity_id, program_enrollment_id, action, changes, job_id, queue, requested_by, course_key)
    select h.entity, h.entity_id, h.pe_id, h.action, h.changes::jsonb, h.job_id, h.queue, h.requested_by,
           coalesce(h.course_key, case h.entity
             when 'program_course_enrollment' then coalesce(
               (select pce.course_key from program_course_enrollments pce where pce.id = h.entity_id),
               h.changes::jsonb -> 'course_key' ->> 1)
             when 'course_enrollment' then coalesce(
               (select ce.course_key from course_enrollments ce where ce.id = h.entity_id),
               h.changes::jsonb -> 'course_key' ->> 1)
           end)
    from unnest(
      ${rows.map((r) => r.entity)}::text[],
      ${rows.map((r) => r.entityId)}::bigint[],
      ${rows.map((r) => r.programEnrollmentId)}::bigint[],
      ${rows.map((r) => r.action)}::text[],
      ${rows.map((r) => JSON.stringify(r.changes))}::text[],
      ${rows.map((_, i) => stampOf(i).jobId)}::text[],
      ${rows.map((_, i) => stampOf(i).queue)}::text[],
      ${rows.map((_, i) => stampOf(i).requestedBy)}::text[],
      ${rows.map((r) => r.courseKey ?? null)}::text[]
    ) with ordinality as h(entity, entity_id, pe_id, action, changes, job_id, queue, requested_by, course_key, n)
    order by h.n`;
}

/** Earlier rows that recorded a PE's key now record its retired key (rule 12). */
export async function retireKeysInHistory(tx: Tx, rows: ReadonlyArray<{ id: number; key: string }>): Promise<void> {
  await tx`
    update history h set changes = jsonb_set(h.changes, '{student_key}', jsonb_build_array(h.changes->'student_key'->0, to_jsonb(v.key)))
    from unnest(${rows.map((r) => r.id)}::bigint[], ${rows.map((r) => r.key)}::text[]) as v(id, key)
    where h.program_enrollment_id = v.id and h.entity = 'program_enrollment' and h.changes ? 'student_key'`;
}

/** The history of PEs that are deleted goes with them (Open edX does the same). */
export async function deleteHistoryOfEnrollments(tx: Tx, peIds: readonly number[]): Promise<void> {
  await tx`delete from history where program_enrollment_id = any(${peIds as number[]}::bigint[])`;
}
