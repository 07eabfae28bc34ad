import avro from 'avsc';

/**
 * The outbound events on the Open edX event bus (docs/contract.md "Outbound events"), in the wire
 * format of `edx-event-bus-redis` with the Avro schemas of `openedx-events`
 * (docs/openedx-event-bus.md): event types, topics, the data records and their binary encoding.
 */

export const ENROLLMENT_CREATED = 'org.openedx.learning.course.enrollment.created.v1';
export const ENROLLMENT_CHANGED = 'org.openedx.learning.course.enrollment.changed.v1';
export const ROLE_ADDED = 'org.openedx.learning.user.course_access_role.added.v1';
export const ROLE_REMOVED = 'org.openedx.learning.user.course_access_role.removed.v1';

export const EVENT_TYPES = [ENROLLMENT_CREATED, ENROLLMENT_CHANGED, ROLE_ADDED, ROLE_REMOVED] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const ENROLLMENT_TOPIC = 'learning-course-enrollment-lifecycle';
export const ROLE_TOPIC = 'learning-course-access-role-lifecycle';
export const TOPICS = [ENROLLMENT_TOPIC, ROLE_TOPIC] as const;
export type Topic = (typeof TOPICS)[number];

export const TOPIC_OF: Record<EventType, Topic> = {
  [ENROLLMENT_CREATED]: ENROLLMENT_TOPIC,
  [ENROLLMENT_CHANGED]: ENROLLMENT_TOPIC,
  [ROLE_ADDED]: ROLE_TOPIC,
  [ROLE_REMOVED]: ROLE_TOPIC,
};

/** The `source` field: Open edX services write `openedx/<service>/web`. */
export const EVENT_SOURCE = 'openedx/program-enrollments/worker';
/** The `sourcelib` field: a dotted version whose parts the consumer reads as integers. */
export const EVENT_SOURCE_LIB = '0.1.0';

/** A stream's key: the topic, prefixed `<prefix>-` as Open edX's EVENT_BUS_TOPIC_PREFIX does. */
export function streamKey(topicPrefix: string | undefined, topic: Topic): string {
  return topicPrefix ? `${topicPrefix}-${topic}` : topic;
}

export interface UserData {
  id: number;
  is_active: boolean;
  pii: { username: string; email: string; name: string };
}

export interface CourseEnrollmentData {
  user: UserData;
  course: { course_key: string; display_name: string; start: string | null; end: string | null };
  mode: string;
  is_active: boolean;
  creation_date: string;
  created_by: UserData | null;
}

export interface CourseAccessRoleData {
  user: UserData;
  org_key: string;
  course_key: string;
  role: string;
}

export type EnrollmentEventData = { enrollment: CourseEnrollmentData };
export type RoleEventData = { course_access_role_data: CourseAccessRoleData };
export type EventData = EnrollmentEventData | RoleEventData;

// The schemas of openedx-events, field by field (docs/openedx-event-bus.md "The schemas"). Binary
// Avro has no field names on the wire: the order and types below are the format.
const userPersonalData = {
  type: 'record',
  name: 'UserPersonalData',
  fields: [
    { name: 'username', type: 'string' },
    { name: 'email', type: 'string' },
    { name: 'name', type: 'string' },
  ],
};
const userData = {
  type: 'record',
  name: 'UserData',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'is_active', type: 'boolean' },
    { name: 'pii', type: userPersonalData },
  ],
};
const courseData = {
  type: 'record',
  name: 'CourseData',
  fields: [
    { name: 'course_key', type: 'string' },
    { name: 'display_name', type: 'string' },
    { name: 'start', type: ['null', 'string'], default: null },
    { name: 'end', type: ['null', 'string'], default: null },
  ],
};
const enrollmentSchema = {
  type: 'record',
  name: 'CloudEvent',
  namespace: 'org.openedx.learning.course.enrollment',
  fields: [
    {
      name: 'enrollment',
      type: {
        type: 'record',
        name: 'CourseEnrollmentData',
        fields: [
          { name: 'user', type: userData },
          { name: 'course', type: courseData },
          { name: 'mode', type: 'string' },
          { name: 'is_active', type: 'boolean' },
          { name: 'creation_date', type: 'string' },
          { name: 'created_by', type: ['null', 'UserData'], default: null },
        ],
      },
    },
  ],
};
const roleSchema = {
  type: 'record',
  name: 'CloudEvent',
  namespace: 'org.openedx.learning.user.course_access_role',
  fields: [
    {
      name: 'course_access_role_data',
      type: {
        type: 'record',
        name: 'CourseAccessRoleData',
        fields: [
          { name: 'user', type: userData },
          { name: 'org_key', type: 'string' },
          { name: 'course_key', type: 'string' },
          { name: 'role', type: 'string' },
        ],
      },
    },
  ],
};

const enrollmentType = avro.Type.forSchema(enrollmentSchema as avro.Schema);
const roleType = avro.Type.forSchema(roleSchema as avro.Schema);

/** The Avro type of each event's data: both enrollment events share one schema, both role events another. */
export const AVRO_TYPE_OF: Record<EventType, avro.Type> = {
  [ENROLLMENT_CREATED]: enrollmentType,
  [ENROLLMENT_CHANGED]: enrollmentType,
  [ROLE_ADDED]: roleType,
  [ROLE_REMOVED]: roleType,
};

/** `event_data`: the schemaless Avro binary encoding (no container header, fingerprint or magic byte). */
export function encodeEventData(type: EventType, data: EventData): Buffer {
  return AVRO_TYPE_OF[type].toBuffer(data);
}

let lastTime = Number.NaN;
let lastTimeText = '';

/**
 * A time as Python's `datetime.isoformat()` writes an aware UTC time: microseconds and `+00:00`.
 * The last one is kept: the events of one transaction share their time, and a created CE's
 * creation time too, so the relay formats about one a write's chunk instead of two an event.
 */
export function eventTime(at: Date): string {
  const ms = at.getTime();
  if (ms !== lastTime) {
    lastTime = ms;
    lastTimeText = `${at.toISOString().slice(0, 23)}000+00:00`;
  }
  return lastTimeText;
}

export interface OutboundEvent {
  id: string;
  type: EventType;
  time: Date;
  data: EventData;
}

/**
 * The fields of a stream entry, in the order the stock producer writes them: each field's value,
 * or null for those that differ from event to event (`streamEntryValues`, in this order). The
 * relay sends the fixed ones once a batch (infra/event-bus.ts).
 */
export function streamEntryTemplate(sourceHost: string): Array<[field: string, value: string | null]> {
  return [
    ['type', null],
    ['id', null],
    ['source', EVENT_SOURCE],
    ['time', null],
    ['minorversion', '0'],
    ['sourcehost', sourceHost],
    ['sourcelib', EVENT_SOURCE_LIB],
    ['event_data', null],
  ];
}

/** The values of one event's entry that `streamEntryTemplate` leaves open, in its order. */
export function streamEntryValues(event: OutboundEvent): Array<string | Buffer> {
  return [event.type, event.id, eventTime(event.time), encodeEventData(event.type, event.data)];
}
