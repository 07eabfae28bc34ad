import { staffRoleEvents } from '../domain/course-access-events.js';
import { type CourseEffect, pairKey } from '../domain/course-enrollment.js';
import type { HistoryRow } from '../domain/history.js';
import { compareCodePoints } from '../domain/order.js';
import type { CourseStatus } from '../domain/statuses.js';
import type { Logger } from '../log.js';
import type { Tx } from './client.js';
import { applyCourseEnrollmentEffects } from './course-enrollments.js';
import { insertHistory, type JobStamp } from './history.js';
import { insertOutboxEvents } from './outbox.js';

/** A learner: the partner organization's person, keyed case-insensitively. */
export interface Learner {
  organizationKey: string;
  studentKeyLower: string;
}

/** A learner as sent, for `lockLearners`: the spelling is stored when the learner is new. */
export interface SentLearner extends Learner {
  studentKey: string;
}

export const learnerId = (l: Learner) => `${l.organizationKey}\u001f${l.studentKeyLower}`;

/**
 * Locks the learners' rows (creating the missing ones) for the rest of the transaction, in one
 * sorted order, and returns the account each is known to belong to. Every transaction that
 * touches a learner's enrollments or identity does this first, so an account event and a write
 * creating the same learner's PE never miss each other (SPEC rule 9), and two jobs never deadlock.
 * Row locks, not advisory locks: a bulk chunk locks a thousand learners, more than Postgres's
 * shared lock table is sized for.
 */
export async function lockLearners(tx: Tx, sent: readonly SentLearner[]): Promise<Map<string, number | null>> {
  const byId = new Map<string, SentLearner>();
  for (const l of sent) if (!byId.has(learnerId(l))) byId.set(learnerId(l), l);
  // The order Postgres locks them in below (COLLATE "C" sorts UTF-8 by code point).
  const list = [...byId.values()].sort(
    (a, b) =>
      compareCodePoints(a.organizationKey, b.organizationKey) ||
      compareCodePoints(a.studentKeyLower, b.studentKeyLower),
  );
  const accounts = new Map<string, number | null>();
  let missing = list;
  // A learner row deleted by expiry between the two statements is created again on the next pass.
  for (let pass = 0; missing.length > 0; pass += 1) {
    if (pass === 3) throw Object.assign(new Error('learner rows keep disappearing'), { code: '40001' });
    const orgs = missing.map((l) => l.organizationKey);
    await tx`
      insert into learners (organization_key, student_key)
      select v.org, v.key from unnest(${orgs}::text[], ${missing.map((l) => l.studentKey)}::text[]) with ordinality as v(org, key, n)
      order by v.n
      on conflict do nothing`;
    const rows = await tx<{ org: string; lower: string; userId: number | null }[]>`
      select l.organization_key as org, l.student_key_lower as lower, l.user_id as "userId"
      from learners l
      join unnest(${orgs}::text[], ${missing.map((l) => l.studentKeyLower)}::text[]) as v(org, lower)
        on l.organization_key = v.org and l.student_key_lower = v.lower
      order by l.organization_key collate "C", l.student_key_lower collate "C"
      for update of l`;
    for (const r of rows) accounts.set(learnerId({ organizationKey: r.org, studentKeyLower: r.lower }), r.userId);
    missing = missing.filter((l) => !accounts.has(learnerId(l)));
  }
  return accounts;
}

/**
 * Links waiting PEs to accounts, oldest first: the PE gets its user, every PCE is realized
 * (SPEC rule 6) and pending staff roles become real ones. The caller holds the learners' locks
 * and has checked that no account gets a second PE in a program. Returns each linked PE's
 * course keys.
 */
export async function linkProgramEnrollments(
  tx: Tx,
  links: ReadonlyArray<{ peId: number; userId: number }>,
  stamp: JobStamp,
  log: Logger,
): Promise<Map<number, string[]>> {
  const courseKeys = new Map<number, string[]>();
  if (links.length === 0) return courseKeys;
  const ordered = [...links].sort((a, b) => a.peId - b.peId);
  const linked = await tx<{ id: number; userId: number }[]>`
    update program_enrollments pe set user_id = v.user_id, modified_at = now()
    from unnest(${ordered.map((l) => l.peId)}::bigint[], ${ordered.map((l) => l.userId)}::bigint[]) as v(id, user_id)
    where pe.id = v.id and pe.user_id is null
    returning pe.id, pe.user_id as "userId"`;
  if (linked.length === 0) return courseKeys;
  const userOf = new Map(linked.map((l) => [l.id, l.userId]));
  const ids = [...userOf.keys()].sort((a, b) => a - b);
  const history: HistoryRow[] = ids.map((id) => ({
    entity: 'program_enrollment',
    entityId: id,
    programEnrollmentId: id,
    action: 'changed',
    changes: { user_id: [null, userOf.get(id)] },
  }));
  await insertHistory(tx, history, stamp);

  const pces = await tx<{ id: number; peId: number; courseKey: string; status: CourseStatus; org: string }[]>`
    select pce.id, pce.program_enrollment_id as "peId", pce.course_key as "courseKey", pce.status,
           pce.organization_key as org
    from unnest(${ids}::bigint[]) as p(id)
    join program_course_enrollments pce on pce.program_enrollment_id = p.id
    order by pce.program_enrollment_id, pce.id`;
  for (const id of ids) courseKeys.set(id, []);
  const effects: CourseEffect[] = pces.map((p) => {
    courseKeys.get(p.peId)!.push(p.courseKey);
    return { kind: 'realize', pceId: p.id, userId: userOf.get(p.peId)!, courseKey: p.courseKey, status: p.status };
  });
  await applyCourseEnrollmentEffects(tx, effects, stamp, log);

  if (pces.length) {
    const pceIds = pces.map((p) => p.id);
    const granted = await tx<{ userId: number; courseKey: string }[]>`
      with granted as (
        delete from pending_role_assignments where program_course_enrollment_id = any(${pceIds}::bigint[])
        returning program_course_enrollment_id as pce_id
      )
      insert into course_staff_roles (user_id, course_key)
      select pe.user_id, pce.course_key
      from granted
      join program_course_enrollments pce on pce.id = granted.pce_id
      join program_enrollments pe on pe.id = pce.program_enrollment_id
      on conflict do nothing
      returning user_id as "userId", course_key as "courseKey"`;
    // The role event names the organization of the program that granted it.
    const orgOf = new Map(pces.map((p) => [pairKey(userOf.get(p.peId)!, p.courseKey), p.org]));
    const roles = granted.map((g) => ({ ...g, orgKey: orgOf.get(pairKey(g.userId, g.courseKey))! }));
    if (stamp.recordEvents) await insertOutboxEvents(tx, staffRoleEvents('added', roles));
  }
  for (const keys of courseKeys.values()) keys.sort(compareCodePoints);
  return courseKeys;
}

/**
 * Links this program's waiting PEs of learners whose account is known (`known`, from
 * `lockLearners`), unless the account already has a PE in the program (that PE stays waiting).
 */
export async function linkWaitingOfKnownLearners(
  tx: Tx,
  programUuid: string,
  organizationKey: string,
  lowers: readonly string[],
  known: ReadonlyMap<string, number | null>,
  stamp: JobStamp,
  log: Logger,
): Promise<void> {
  const withAccount = lowers.filter((l) => known.get(learnerId({ organizationKey, studentKeyLower: l })));
  if (withAccount.length === 0) return;
  const waiting = await tx<{ id: number; lower: string; taken: boolean }[]>`
    select pe.id, pe.student_key_lower as lower,
           exists (select 1 from program_enrollments o
                   join learners l on l.organization_key = ${organizationKey} and l.student_key_lower = pe.student_key_lower
                   where o.program_uuid = pe.program_uuid and o.user_id = l.user_id) as taken
    from unnest(${withAccount}::text[]) as k(lower)
    join program_enrollments pe on pe.program_uuid = ${programUuid} and pe.student_key_lower = k.lower
    where pe.user_id is null
    order by pe.id`;
  const users = new Set<number>();
  const links: Array<{ peId: number; userId: number }> = [];
  for (const pe of waiting) {
    const userId = known.get(learnerId({ organizationKey, studentKeyLower: pe.lower }))!;
    if (pe.taken || users.has(userId)) {
      log.warn({ program: programUuid, pe: pe.id }, 'account already has a PE in the program: this PE stays waiting');
      continue;
    }
    users.add(userId);
    links.push({ peId: pe.id, userId });
  }
  await linkProgramEnrollments(tx, links, stamp, log);
}
