import {
  ENROLLMENT_CHANGED,
  ENROLLMENT_CREATED,
  type EventData,
  type EventType,
  eventTime,
  ROLE_ADDED,
  ROLE_REMOVED,
  type UserData,
} from '../contract/outbound-events.js';

/**
 * What the LMS must learn of the service's course-access decisions (contract.md "Outbound events"):
 * each created or changed course enrollment (CE) and each granted or revoked staff role becomes
 * one event. Pure: the repositories store the events with the change and the relay publishes them.
 */

/** An event as it is decided, before the account's details are attached when it is stored. */
export interface CourseAccessEvent {
  type: EventType;
  userId: number;
  courseKey: string;
  /** The CE's state after the change (enrollment events); null for role events. */
  mode: string | null;
  isActive: boolean | null;
  /** The organization of the program through which the role changed (role events); null otherwise. */
  orgKey: string | null;
}

/** A CE as the course-access module reports its write: what became of it, and its state after. */
export interface CourseEnrollmentWrite {
  kind: 'created' | 'changed' | 'unchanged';
  userId: number;
  courseKey: string;
  to: { mode: string; isActive: boolean };
}

/**
 * The events of one batch of CE writes: `created` for each new CE, `changed` for each existing CE
 * whose mode or is_active changed. A CE written back unchanged makes no event (contract.md
 * "Outbound events": a write that changes nothing publishes nothing).
 */
export function courseEnrollmentEvents(writes: readonly CourseEnrollmentWrite[]): CourseAccessEvent[] {
  return writes
    .filter((w) => w.kind !== 'unchanged')
    .map((w) => ({
      type: w.kind === 'created' ? ENROLLMENT_CREATED : ENROLLMENT_CHANGED,
      userId: w.userId,
      courseKey: w.courseKey,
      mode: w.to.mode,
      isActive: w.to.isActive,
      orgKey: null,
    }));
}

/** The course staff role (rules.md 8) as Open edX names it in `student_courseaccessrole`. */
export const STAFF_ROLE = 'staff';

/** One event per staff role actually granted (`added`) or revoked (`removed`). */
export function staffRoleEvents(
  change: 'added' | 'removed',
  roles: ReadonlyArray<{ userId: number; courseKey: string; orgKey: string }>,
): CourseAccessEvent[] {
  return roles.map((r) => ({
    type: change === 'added' ? ROLE_ADDED : ROLE_REMOVED,
    userId: r.userId,
    courseKey: r.courseKey,
    mode: null,
    isActive: null,
    orgKey: r.orgKey,
  }));
}

/** An event as stored: with the account's details and the CE's creation time taken at the change. */
export interface StoredCourseAccessEvent extends CourseAccessEvent {
  username: string;
  /** "" when the LMS gave none. */
  email: string;
  /** When the CE was created (enrollment events). */
  enrolledAt: Date | null;
}

/** The event's data record, as the contract fills it in ("" and null where the service knows nothing). */
export function eventData(event: StoredCourseAccessEvent): EventData {
  const user: UserData = {
    id: event.userId,
    is_active: true,
    pii: { username: event.username, email: event.email, name: '' },
  };
  if (event.type === ROLE_ADDED || event.type === ROLE_REMOVED) {
    return {
      course_access_role_data: { user, org_key: event.orgKey ?? '', course_key: event.courseKey, role: STAFF_ROLE },
    };
  }
  return {
    enrollment: {
      user,
      course: { course_key: event.courseKey, display_name: '', start: null, end: null },
      mode: event.mode ?? '',
      is_active: event.isActive ?? false,
      creation_date: eventTime(event.enrolledAt ?? new Date(0)),
      created_by: null,
    },
  };
}
