import { CONVERTIBLE_MODES, type CourseStatus, MASTERS } from './statuses.js';

/**
 * What happens to an account's course enrollment (CE) when program course enrollments (PCEs)
 * that hold it are realized, change status or are detached (docs/rules.md rules 2, 6, 7, 10). Pure: the
 * caller loads the CEs and the PCEs holding them, runs the effects in order, and writes the result.
 */
export interface CourseEnrollmentState {
  /** null for a CE that does not exist yet. */
  id: number | null;
  userId: number;
  courseKey: string;
  mode: string;
  isActive: boolean;
  /** The PCEs pointing at this CE and their statuses. */
  holders: Map<number, CourseStatus>;
}

export type CourseEffect =
  /** A PCE gets the account's CE: created realized, or its PE linked. */
  | { kind: 'realize'; pceId: number; userId: number; courseKey: string; status: CourseStatus }
  /** A realized PCE changed status. */
  | { kind: 'status'; pceId: number; userId: number; courseKey: string; status: CourseStatus }
  /** A PCE let go of the CE because its PE is being linked to another account. */
  | { kind: 'detach'; pceId: number; userId: number; courseKey: string };

export const pairKey = (userId: number, courseKey: string) => `${userId}\u0000${courseKey}`;

export interface EffectOutcome {
  /** Warnings worth logging (never with PII). */
  notes: string[];
}

function othersActive(ce: CourseEnrollmentState, pceId: number): boolean {
  for (const [id, status] of ce.holders) if (id !== pceId && status === 'active') return true;
  return false;
}

/**
 * Applies the effects in order to the CE states (mutating them), creating states for CEs that do
 * not exist yet. `courseModes` says which modes each course offers (for the move to audit).
 */
export function applyCourseEffects(
  ces: Map<string, CourseEnrollmentState>,
  effects: readonly CourseEffect[],
  courseModes: Map<string, readonly string[]>,
): EffectOutcome {
  const notes: string[] = [];
  for (const effect of effects) {
    const key = pairKey(effect.userId, effect.courseKey);
    let ce = ces.get(key);
    if (effect.kind === 'realize') {
      if (!ce) {
        ce = {
          id: null,
          userId: effect.userId,
          courseKey: effect.courseKey,
          mode: MASTERS,
          isActive: true,
          holders: new Map(),
        };
        ces.set(key, ce);
      } else if (!ce.isActive) {
        // An inactive CE of any mode is re-enrolled in the masters track.
        ce.mode = MASTERS;
        ce.isActive = true;
      } else if (CONVERTIBLE_MODES.includes(ce.mode)) {
        ce.mode = MASTERS;
      } else if (ce.mode !== MASTERS) {
        notes.push(
          `kept active ${ce.mode} course enrollment of ${effect.courseKey}: it cannot be converted to masters`,
        );
      }
      ce.holders.set(effect.pceId, effect.status);
      // An inactive PCE releases a masters seat, unless another program's active PCE holds it.
      if (effect.status === 'inactive' && ce.mode === MASTERS && !othersActive(ce, effect.pceId)) ce.isActive = false;
    } else if (effect.kind === 'status') {
      if (!ce) continue;
      ce.holders.set(effect.pceId, effect.status);
      if (effect.status === 'active') ce.isActive = true;
      else if (!othersActive(ce, effect.pceId)) ce.isActive = false;
    } else {
      if (!ce) continue;
      ce.holders.delete(effect.pceId);
      if (!othersActive(ce, effect.pceId)) {
        ce.isActive = false;
        if (courseModes.get(effect.courseKey)?.includes('audit')) ce.mode = 'audit';
      }
    }
  }
  return { notes };
}
