import { courseEnrollmentEvents } from '../domain/course-access-events.js';
import {
  applyCourseEffects,
  type CourseEffect,
  type CourseEnrollmentState,
  pairKey,
} from '../domain/course-enrollment.js';
import type { HistoryRow } from '../domain/history.js';
import type { CourseStatus } from '../domain/statuses.js';
import type { Logger } from '../log.js';
import type { Tx } from './client.js';
import { insertHistory, type JobStamp } from './history.js';
import { insertOutboxEvents } from './outbox.js';
import { courseModes } from './programs.js';

export class ConcurrentCourseEnrollmentError extends Error {
  override name = 'ConcurrentCourseEnrollmentError';
  // Retried like a lost race in Postgres: the next run sees the other writer's row.
  code = '40001';
}

// postgres.js sends a JS boolean array with the wrong type; booleans travel as text ('true'/'false').

/**
 * Loads the CEs the effects touch (locking them), runs the pure rules of
 * domain/course-enrollment.ts, and writes the CEs that changed, the PCEs' links to them and the
 * history, in a handful of statements whatever the number of effects.
 *
 * Effects may name PCEs that are not inserted yet by a negative placeholder id; the caller inserts
 * those with the CE id returned for their (user, course).
 */
export async function applyCourseEnrollmentEffects(
  tx: Tx,
  effects: readonly CourseEffect[],
  stamp: JobStamp,
  log: Logger,
): Promise<Map<string, number>> {
  const ceIds = new Map<string, number>();
  if (effects.length === 0) return ceIds;
  const pairs = new Map<string, { userId: number; courseKey: string }>();
  for (const e of effects) pairs.set(pairKey(e.userId, e.courseKey), { userId: e.userId, courseKey: e.courseKey });
  const pairList = [...pairs.values()];

  const loaded = await tx<{ id: number; userId: number; courseKey: string; mode: string; isActive: boolean }[]>`
    select ce.id, ce.user_id as "userId", ce.course_key as "courseKey", ce.mode, ce.is_active as "isActive"
    from course_enrollments ce
    join unnest(${pairList.map((p) => p.userId)}::bigint[], ${pairList.map((p) => p.courseKey)}::text[]) as p(user_id, course_key)
      on ce.user_id = p.user_id and ce.course_key = p.course_key
    order by ce.id
    for update of ce`;
  const holders = loaded.length
    ? await tx<{ id: number; ceId: number; status: CourseStatus }[]>`
        select pce.id, pce.course_enrollment_id as "ceId", pce.status
        from unnest(${loaded.map((c) => c.id)}::bigint[]) as c(id)
        join program_course_enrollments pce on pce.course_enrollment_id = c.id`
    : [];

  const states = new Map<string, CourseEnrollmentState>();
  const snapshot = new Map<number, { mode: string; isActive: boolean }>();
  for (const c of loaded) {
    states.set(pairKey(c.userId, c.courseKey), { ...c, holders: new Map() });
    snapshot.set(c.id, { mode: c.mode, isActive: c.isActive });
  }
  const byId = new Map(loaded.map((c) => [c.id, states.get(pairKey(c.userId, c.courseKey))!]));
  for (const h of holders) byId.get(h.ceId)?.holders.set(h.id, h.status);

  const modes = effects.some((e) => e.kind === 'detach')
    ? await courseModes(tx, [...new Set(effects.map((e) => e.courseKey))])
    : new Map<string, string[]>();
  const { notes } = applyCourseEffects(states, effects, modes);
  for (const note of notes) log.warn(note);

  const history: HistoryRow[] = [];
  // New CEs.
  const created = [...states.values()].filter((s) => s.id === null);
  if (created.length) {
    const rows = await tx<{ id: number; userId: number; courseKey: string }[]>`
      insert into course_enrollments (user_id, course_key, mode, is_active)
      select * from unnest(
        ${created.map((s) => s.userId)}::bigint[], ${created.map((s) => s.courseKey)}::text[],
        ${created.map((s) => s.mode)}::text[], ${created.map((s) => String(s.isActive))}::text[]::boolean[])
      on conflict (user_id, course_key) do nothing
      returning id, user_id as "userId", course_key as "courseKey"`;
    if (rows.length !== created.length)
      throw new ConcurrentCourseEnrollmentError('a course enrollment was created concurrently');
    for (const r of rows) states.get(pairKey(r.userId, r.courseKey))!.id = r.id;
    for (const s of created) {
      history.push({
        entity: 'course_enrollment',
        entityId: s.id!,
        programEnrollmentId: null,
        action: 'created',
        changes: {
          user_id: [null, s.userId],
          course_key: [null, s.courseKey],
          mode: [null, s.mode],
          is_active: [null, s.isActive],
        },
      });
    }
  }
  // Changed CEs.
  const changed = loaded.filter((c) => {
    const s = byId.get(c.id)!;
    return s.mode !== c.mode || s.isActive !== c.isActive;
  });
  if (changed.length) {
    const after = changed.map((c) => byId.get(c.id)!);
    await tx`
      update course_enrollments ce set mode = v.mode, is_active = v.is_active, modified_at = now()
      from unnest(${after.map((s) => s.id)}::bigint[], ${after.map((s) => s.mode)}::text[], ${after.map((s) => String(s.isActive))}::text[]::boolean[])
        as v(id, mode, is_active)
      where ce.id = v.id`;
    for (const c of changed) {
      const s = byId.get(c.id)!;
      const changes: Record<string, [unknown, unknown]> = {};
      if (s.mode !== c.mode) changes.mode = [c.mode, s.mode];
      if (s.isActive !== c.isActive) changes.is_active = [c.isActive, s.isActive];
      history.push({
        entity: 'course_enrollment',
        entityId: c.id,
        programEnrollmentId: null,
        action: 'changed',
        changes,
      });
    }
  }
  if (stamp.recordEvents)
    await insertOutboxEvents(
      tx,
      courseEnrollmentEvents(
        created,
        changed.map((c) => ({ before: c, after: byId.get(c.id)! })),
      ),
    );
  for (const [key, s] of states) ceIds.set(key, s.id!);

  // Existing PCEs that got or lost their CE.
  const relinks = effects
    .filter((e) => e.pceId > 0 && (e.kind === 'realize' || e.kind === 'detach'))
    .map((e) => ({ pceId: e.pceId, ceId: e.kind === 'realize' ? ceIds.get(pairKey(e.userId, e.courseKey))! : null }));
  if (relinks.length) {
    const rows = await tx<{ id: number; peId: number; old: number | null; ceId: number | null }[]>`
      with v as (
        select * from unnest(${relinks.map((r) => r.pceId)}::bigint[], ${relinks.map((r) => r.ceId)}::bigint[]) as v(id, ce_id)
      ), old as (
        select pce.id, pce.course_enrollment_id as old_ce from program_course_enrollments pce join v on v.id = pce.id
      )
      update program_course_enrollments pce set course_enrollment_id = v.ce_id, modified_at = now()
      from v, old
      where pce.id = v.id and old.id = v.id and pce.course_enrollment_id is distinct from v.ce_id
      returning pce.id, pce.program_enrollment_id as "peId", old.old_ce as old, v.ce_id as "ceId"`;
    for (const r of rows) {
      history.push({
        entity: 'program_course_enrollment',
        entityId: r.id,
        programEnrollmentId: r.peId,
        action: 'changed',
        changes: { course_enrollment_id: [r.old, r.ceId] },
      });
    }
  }
  await insertHistory(tx, history, stamp);
  return ceIds;
}
