import type { ProgramStatus } from '../domain/statuses.js';
import { expectEveryRowUpdated, type Queryable, type Tx } from './client.js';
import type { Learner } from './learners.js';

export interface ProgramEnrollmentRow {
  id: number;
  lower: string;
  studentKey: string;
  userId: number | null;
  status: ProgramStatus;
}

/** The program's PEs of the learners with these lower-cased keys. */
export async function programEnrollmentsOfKeys(
  sql: Queryable,
  programUuid: string,
  lowers: readonly string[],
): Promise<ProgramEnrollmentRow[]> {
  return sql<ProgramEnrollmentRow[]>`
    select pe.id, pe.student_key_lower as lower, pe.student_key as "studentKey", pe.user_id as "userId", pe.status
    from unnest(${lowers as string[]}::text[]) as k(lower)
    join lateral (
      -- One unique-index probe a key, whatever the program's size (see enrollmentsInCourse).
      select id, student_key_lower, student_key, user_id, status from program_enrollments
      where program_uuid = ${programUuid} and student_key_lower = k.lower offset 0
    ) pe on true`;
}

/**
 * The PEs the accounts hold, in `programUuid` only or (null) in every program, locked `for share`
 * until the transaction ends. Whether an account already holds a PE in a program decides whether
 * another PE of it is linked or kept waiting (docs/rules.md), and the held PE may be a learner's
 * the caller has not locked: without the lock, a transaction that unlinked or deleted it could
 * commit after this read and before this write, which would then keep a PE waiting that the
 * commit order says it links (the fault suite's random workload found it: a PE created waiting,
 * then removed by expiry). Locked, such a change waits for this write, or this read waits for it
 * and reads the PE as it then is.
 */
export async function programEnrollmentsOfAccounts(
  tx: Tx,
  userIds: readonly number[],
  programUuid: string | null,
): Promise<Array<{ id: number; userId: number; programUuid: string }>> {
  if (userIds.length === 0) return [];
  return tx<{ id: number; userId: number; programUuid: string }[]>`
    select pe.id, pe.user_id as "userId", pe.program_uuid as "programUuid"
    from unnest(${userIds as number[]}::bigint[]) as u(id)
    join program_enrollments pe on pe.user_id = u.id
    ${programUuid === null ? tx`` : tx`where pe.program_uuid = ${programUuid}`}
    order by pe.id
    for share of pe`;
}

export interface WaitingEnrollment {
  id: number;
  programUuid: string;
  studentKey: string;
  organizationKey: string;
  lower: string;
}

/**
 * The learners' waiting PEs, in `programUuid` only or (null) in every program, oldest first. Each
 * learner is one probe of the learner index (`lateral … offset 0`): as a join, the planner hashed
 * every waiting PE of the program for each chunk (`auto_explain`: 30,000 rows a chunk at 30,000
 * waiting learners), a cost that grew with the program.
 */
export async function waitingEnrollmentsOfLearners(
  tx: Tx,
  learners: readonly Learner[],
  programUuid: string | null,
): Promise<WaitingEnrollment[]> {
  if (learners.length === 0) return [];
  return tx<WaitingEnrollment[]>`
    select pe.id, pe.program_uuid as "programUuid", pe.student_key as "studentKey",
           pe.organization_key as "organizationKey", pe.student_key_lower as lower
    from unnest(${learners.map((l) => l.organizationKey)}::text[], ${learners.map((l) => l.studentKeyLower)}::text[]) as v(org, lower)
    join lateral (
      select * from program_enrollments
      where organization_key = v.org and student_key_lower = v.lower and user_id is null
        ${programUuid === null ? tx`` : tx`and program_uuid = ${programUuid}`}
      offset 0
    ) pe on true
    order by pe.id`;
}

export interface NewProgramEnrollment {
  studentKey: string;
  userId: number | null;
  curriculumUuid: string;
  status: ProgramStatus;
}

/** Inserts PEs in the order given; returns each one's id by its lower-cased key. */
export async function insertProgramEnrollments(
  tx: Tx,
  programUuid: string,
  organizationKey: string,
  rows: readonly NewProgramEnrollment[],
): Promise<Array<{ id: number; lower: string }>> {
  return tx<{ id: number; lower: string }[]>`
    insert into program_enrollments (program_uuid, organization_key, student_key, user_id, curriculum_uuid, status)
    select ${programUuid}, ${organizationKey}, v.student_key, v.user_id, v.curriculum_uuid, v.status
    from unnest(${rows.map((x) => x.studentKey)}::text[], ${rows.map((x) => x.userId)}::bigint[],
                ${rows.map((x) => x.curriculumUuid)}::uuid[], ${rows.map((x) => x.status)}::text[])
      with ordinality as v(student_key, user_id, curriculum_uuid, status, n)
    order by v.n
    returning id, student_key_lower as lower`;
}

/** Sets the PEs' statuses; every one written gets a fresh modification time (rule 11). */
export async function updateProgramEnrollmentStatuses(
  tx: Tx,
  rows: ReadonlyArray<{ id: number; status: ProgramStatus }>,
): Promise<void> {
  const updated = await tx`
    update program_enrollments pe set status = v.status, modified_at = now()
    from unnest(${rows.map((x) => x.id)}::bigint[], ${rows.map((x) => x.status)}::text[]) as v(id, status)
    where pe.id = v.id`;
  expectEveryRowUpdated(updated.count, rows.length, 'program enrollment');
}

/** Gives waiting PEs their accounts; returns the PEs that were still waiting and now are linked. */
export async function linkWaitingEnrollments(
  tx: Tx,
  links: ReadonlyArray<{ peId: number; userId: number }>,
): Promise<Array<{ id: number; userId: number }>> {
  return tx<{ id: number; userId: number }[]>`
    update program_enrollments pe set user_id = v.user_id, modified_at = now()
    from unnest(${links.map((l) => l.peId)}::bigint[], ${links.map((l) => l.userId)}::bigint[]) as v(id, user_id)
    where pe.id = v.id and pe.user_id is null
    returning pe.id, pe.user_id as "userId"`;
}

export async function unlinkEnrollment(tx: Tx, peId: number): Promise<void> {
  await tx`update program_enrollments set user_id = null, modified_at = now() where id = ${peId}`;
}

/** Waiting PEs not modified for `seconds`: the learners expiry locks first. */
export async function learnersOfWaitingEnrollmentsOlderThan(
  tx: Tx,
  seconds: number,
): Promise<Array<{ organizationKey: string; studentKey: string; studentKeyLower: string }>> {
  return tx<{ organizationKey: string; studentKey: string; studentKeyLower: string }[]>`
    select organization_key as "organizationKey", student_key as "studentKey", student_key_lower as "studentKeyLower"
    from program_enrollments
    where user_id is null and modified_at <= statement_timestamp() - make_interval(secs => ${seconds})`;
}

/**
 * Locks the waiting PEs not modified for `seconds`, re-checked after the locks are granted. Their
 * age is measured at this statement, after the learners' locks are held, not when the expiry's
 * transaction began (docs/rules.md rule 11): a write that committed while the expiry waited is
 * judged by its own modification time, as it would be by an expiry that started after it.
 */
export async function lockWaitingEnrollmentsOlderThan(
  tx: Tx,
  seconds: number,
): Promise<Array<{ id: number; programUuid: string }>> {
  return tx<{ id: number; programUuid: string }[]>`
    select id, program_uuid as "programUuid" from program_enrollments
    where user_id is null and modified_at <= statement_timestamp() - make_interval(secs => ${seconds})
    order by id
    for update`;
}

/** Deletes PEs; their PCEs and pending roles go with them (foreign keys cascade). */
export async function deleteProgramEnrollments(tx: Tx, ids: readonly number[]): Promise<void> {
  await tx`delete from program_enrollments where id = any(${ids as number[]}::bigint[])`;
}

/** The account's PEs whose key is not retired yet. */
export async function unretiredEnrollmentsOfAccount(
  tx: Tx,
  userId: number,
): Promise<Array<{ id: number; organizationKey: string; studentKeyLower: string }>> {
  return tx<{ id: number; organizationKey: string; studentKeyLower: string }[]>`
    select id, organization_key as "organizationKey", student_key_lower as "studentKeyLower" from program_enrollments
    where user_id = ${userId} and student_key !~ '^retired_[0-9a-f]{64}$'
    order by id`;
}

export async function setProgramEnrollmentKeys(
  tx: Tx,
  rows: ReadonlyArray<{ id: number; key: string }>,
): Promise<void> {
  await tx`
    update program_enrollments pe set student_key = v.key, modified_at = now()
    from unnest(${rows.map((r) => r.id)}::bigint[], ${rows.map((r) => r.key)}::text[]) as v(id, key) where pe.id = v.id`;
}
