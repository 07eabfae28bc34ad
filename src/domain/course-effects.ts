import type { CourseEffect } from './course-enrollment.js';
import type { CourseStatus } from './statuses.js';

/**
 * What happened to a PCE, as far as its account's course enrollment (CE) is concerned.
 *  - created: a new PCE (by a negative placeholder id until it is inserted);
 *  - status: an existing PCE changed status;
 *  - linked: its PE got an account;
 *  - unlinked: its PE let go of its account (explicit relinking).
 */
export type PceChange =
  | { on: 'created'; pceId: number; userId: number | null; courseKey: string; status: CourseStatus }
  | {
      on: 'status';
      pceId: number;
      userId: number | null;
      ceId: number | null;
      courseKey: string;
      status: CourseStatus;
    }
  | { on: 'linked'; pceId: number; userId: number; courseKey: string; status: CourseStatus }
  | { on: 'unlinked'; pceId: number; userId: number; ceId: number | null; courseKey: string };

/**
 * The course effect a PCE change emits, or null when it touches no CE: a waiting learner has no
 * CE (rule 5); a PCE that gets an account, or changes status without a CE yet, realizes one
 * (rule 6); a realized PCE's status change moves its CE (rule 7); an unlinked PCE detaches from
 * its CE, and one without a CE has nothing to detach (rule 10).
 */
export function courseEffectOf(change: PceChange): CourseEffect | null {
  const { pceId, courseKey } = change;
  switch (change.on) {
    case 'created':
      return change.userId === null
        ? null
        : { kind: 'realize', pceId, userId: change.userId, courseKey, status: change.status };
    case 'status':
      if (change.userId === null) return null;
      return {
        kind: change.ceId === null ? 'realize' : 'status',
        pceId,
        userId: change.userId,
        courseKey,
        status: change.status,
      };
    case 'linked':
      return { kind: 'realize', pceId, userId: change.userId, courseKey, status: change.status };
    case 'unlinked':
      return change.ceId === null ? null : { kind: 'detach', pceId, userId: change.userId, courseKey };
  }
}

/** The effects of several PCE changes, in order, without the ones that touch no CE. */
export function courseEffectsOf(changes: readonly PceChange[]): CourseEffect[] {
  return changes.flatMap((c) => courseEffectOf(c) ?? []);
}

/** A CE's mode and activity, before or after a change. */
export interface CourseEnrollmentFields {
  mode: string;
  isActive: boolean;
}

/** The history `changes` of a CE going from `before` to `after`; null when nothing changed. */
export function courseEnrollmentChanges(
  before: CourseEnrollmentFields,
  after: CourseEnrollmentFields,
): Record<string, [unknown, unknown]> | null {
  const changes: Record<string, [unknown, unknown]> = {};
  if (before.mode !== after.mode) changes.mode = [before.mode, after.mode];
  if (before.isActive !== after.isActive) changes.is_active = [before.isActive, after.isActive];
  return Object.keys(changes).length ? changes : null;
}
