import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgSequence,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

/**
 * The data model. Invariants of docs/rules.md live here as constraints, so that no retry, race or lost
 * Redis lock can break them:
 *  - one PE per program and learner key (case-insensitive) and per program and account;
 *  - at most one active PCE per learner (organization, key) and course, across programs;
 *  - one CE per account and course, shared by every PCE that points at it.
 */

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
const modifiedAt = () => timestamp('modified_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();

export const programs = pgTable('programs', {
  programUuid: uuid('program_uuid').primaryKey(),
  programKey: text('program_key'),
  organizationKey: text('organization_key').notNull(),
  createdAt: createdAt(),
  modifiedAt: modifiedAt(),
});

/** A program's curricula, in the order the catalog listed them; the first active one is the default. */
export const curricula = pgTable(
  'curricula',
  {
    curriculumUuid: uuid('curriculum_uuid').primaryKey(),
    programUuid: uuid('program_uuid')
      .notNull()
      .references(() => programs.programUuid, { onDelete: 'cascade' }),
    position: integer('position').notNull(),
    isActive: boolean('is_active').notNull(),
    courseKeys: text('course_keys').array().notNull(),
  },
  (t) => [index('curricula_program_idx').on(t.programUuid, t.position)],
);

/** Course runs known to the catalog, with the enrollment modes they offer. */
export const courses = pgTable('courses', {
  courseKey: text('course_key').primaryKey(),
  modes: text('modes').array().notNull(),
});

/** The program's own name for a course run (Registrar's external course key). */
export const programCourses = pgTable(
  'program_courses',
  {
    programUuid: uuid('program_uuid')
      .notNull()
      .references(() => programs.programUuid, { onDelete: 'cascade' }),
    courseKey: text('course_key').notNull(),
    externalCourseKey: text('external_course_key'),
    /** Where upsert-program listed the course, so the catalog read gives the courses in that order. */
    position: integer('position').notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.programUuid, t.courseKey] }),
    index('program_courses_external_idx').on(t.programUuid, t.externalCourseKey),
  ],
);

export const accounts = pgTable(
  'accounts',
  {
    userId: bigint('user_id', { mode: 'number' }).primaryKey(),
    username: text('username').notNull(),
    email: text('email'),
    createdAt: createdAt(),
    modifiedAt: modifiedAt(),
  },
  (t) => [uniqueIndex('accounts_username_uq').on(t.username)],
);

/**
 * A learner: a partner organization's person, `(organization_key, student_key)` with the key
 * compared case-insensitively and its first spelling kept. `user_id` is the LMS account the
 * learner's SSO identity belongs to, once known. Every transaction that touches a learner locks
 * this row first, which serializes account events and writes on the learner.
 */
export const learners = pgTable(
  'learners',
  {
    organizationKey: text('organization_key').notNull(),
    studentKey: text('student_key').notNull(),
    studentKeyLower: text('student_key_lower').generatedAlwaysAs(sql`lower(student_key)`).notNull(),
    userId: bigint('user_id', { mode: 'number' }).references(() => accounts.userId, { onDelete: 'set null' }),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.organizationKey, t.studentKeyLower] }), index('learners_user_idx').on(t.userId)],
);

export const programEnrollments = pgTable(
  'program_enrollments',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    programUuid: uuid('program_uuid')
      .notNull()
      .references(() => programs.programUuid),
    /** Copied from the program: a learner is (organization, key), not the bare key. */
    organizationKey: text('organization_key').notNull(),
    studentKey: text('student_key').notNull(),
    studentKeyLower: text('student_key_lower').generatedAlwaysAs(sql`lower(student_key)`).notNull(),
    /** NULL while the enrollment is waiting for the learner's account. */
    userId: bigint('user_id', { mode: 'number' }).references(() => accounts.userId),
    curriculumUuid: uuid('curriculum_uuid').notNull(),
    status: text('status', { enum: ['enrolled', 'pending', 'suspended', 'canceled', 'ended'] }).notNull(),
    createdAt: createdAt(),
    modifiedAt: modifiedAt(),
  },
  (t) => [
    uniqueIndex('program_enrollments_program_key_uq').on(t.programUuid, t.studentKeyLower),
    uniqueIndex('program_enrollments_program_user_uq').on(t.programUuid, t.userId).where(sql`user_id is not null`),
    index('program_enrollments_learner_idx').on(t.organizationKey, t.studentKeyLower),
    index('program_enrollments_user_idx').on(t.userId),
    index('program_enrollments_waiting_idx').on(t.modifiedAt).where(sql`user_id is null`),
    check('program_enrollments_status_ck', sql`status in ('enrolled', 'pending', 'suspended', 'canceled', 'ended')`),
  ],
);

export const courseEnrollments = pgTable(
  'course_enrollments',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    /** No foreign key: the LMS may report a CE of an account it has not announced yet. */
    userId: bigint('user_id', { mode: 'number' }).notNull(),
    courseKey: text('course_key').notNull(),
    mode: text('mode').notNull(),
    isActive: boolean('is_active').notNull(),
    createdAt: createdAt(),
    modifiedAt: modifiedAt(),
  },
  (t) => [uniqueIndex('course_enrollments_user_course_uq').on(t.userId, t.courseKey)],
);

export const programCourseEnrollments = pgTable(
  'program_course_enrollments',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    programEnrollmentId: bigint('program_enrollment_id', { mode: 'number' })
      .notNull()
      .references(() => programEnrollments.id, { onDelete: 'cascade' }),
    courseKey: text('course_key').notNull(),
    status: text('status', { enum: ['active', 'inactive'] }).notNull(),
    /** NULL while the PE is waiting; several PCEs (of several programs) may share one CE. */
    courseEnrollmentId: bigint('course_enrollment_id', { mode: 'number' }).references(() => courseEnrollments.id),
    /** The learner, copied from the PE, so that the one-active-seat rule can be a unique index. */
    organizationKey: text('organization_key').notNull(),
    studentKeyLower: text('student_key_lower').notNull(),
    createdAt: createdAt(),
    modifiedAt: modifiedAt(),
  },
  (t) => [
    uniqueIndex('program_course_enrollments_pe_course_uq').on(t.programEnrollmentId, t.courseKey),
    uniqueIndex('program_course_enrollments_one_active_seat_uq')
      .on(t.organizationKey, t.studentKeyLower, t.courseKey)
      .where(sql`status = 'active'`),
    index('program_course_enrollments_course_idx').on(t.courseKey, t.id),
    index('program_course_enrollments_ce_idx').on(t.courseEnrollmentId),
    check('program_course_enrollments_status_ck', sql`status in ('active', 'inactive')`),
  ],
);

/** Granted course staff roles (Open edX `student_courseaccessrole` with role `staff`). */
export const courseStaffRoles = pgTable(
  'course_staff_roles',
  {
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => accounts.userId),
    courseKey: text('course_key').notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.courseKey] })],
);

/** A staff role waiting for the learner's account (Open edX CourseAccessRoleAssignment). */
export const pendingRoleAssignments = pgTable('pending_role_assignments', {
  programCourseEnrollmentId: bigint('program_course_enrollment_id', { mode: 'number' })
    .primaryKey()
    .references(() => programCourseEnrollments.id, { onDelete: 'cascade' }),
  role: text('role').notNull().default('staff'),
  createdAt: createdAt(),
});

/**
 * One row per create, change or delete of a PE, PCE or CE. Read by PE only (a learner's history,
 * retirement, expiry: `history_pe_idx`); no index by entity, which every bulk chunk kept up for
 * two thousand rows and no statement read.
 */
export const history = pgTable(
  'history',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    entity: text('entity', {
      enum: ['program_enrollment', 'program_course_enrollment', 'course_enrollment'],
    }).notNull(),
    entityId: bigint('entity_id', { mode: 'number' }).notNull(),
    /** The PE the row belongs to (for PE and PCE rows), so that a learner's history is one lookup. */
    programEnrollmentId: bigint('program_enrollment_id', { mode: 'number' }),
    action: text('action', { enum: ['created', 'changed', 'deleted'] }).notNull(),
    changes: jsonb('changes').notNull(),
    jobId: text('job_id'),
    /** The queue of `job_id` (`enrollments` or `accounts`): BullMQ numbers each queue's jobs on its own. */
    queue: text('queue'),
    requestedBy: text('requested_by'),
    /** The course of a PCE or CE row (null for PE rows). */
    courseKey: text('course_key'),
  },
  (t) => [index('history_pe_idx').on(t.programEnrollmentId, t.id)],
);

/**
 * Jobs the service added on a caller's behalf (the CSV uploads): BullMQ forgets finished jobs after
 * a while and knows nothing of removed ones, so this is how the job API can still answer for them
 * (`Succeeded` from the job's stored result, `Canceled` when it was removed before it finished).
 */
export const submittedJobs = pgTable('submitted_jobs', {
  jobId: text('job_id').primaryKey(),
  queue: text('queue').notNull(),
  name: text('name').notNull(),
  /** The program the job writes to: a partner token sees only jobs of its organizations' programs. */
  programUuid: uuid('program_uuid'),
  /** `api:<token name>` of the upload (docs/contract.md "Who may do what"), for the job status. */
  requestedBy: text('requested_by'),
  createdAt: createdAt(),
});

/**
 * Partner tokens of the HTTP API (docs/contract.md "Who may do what"): a name, the organizations covered
 * and the permission on them. Only a SHA-256 digest of the token is kept (src/domain/api-tokens.ts
 * says why that hash); the token itself is shown once, by the command line. A revoked token keeps
 * its row (its name stays in the history as `api:<name>`), and its name may be issued again.
 */
export const apiTokens = pgTable(
  'api_tokens',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    name: text('name').notNull(),
    tokenHash: text('token_hash').notNull(),
    organizations: text('organizations').array().notNull(),
    permission: text('permission', { enum: ['read', 'write'] }).notNull(),
    createdAt: createdAt(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true, mode: 'date' }),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    uniqueIndex('api_tokens_hash_uq').on(t.tokenHash),
    uniqueIndex('api_tokens_live_name_uq').on(t.name).where(sql`revoked_at is null`),
    check('api_tokens_permission_ck', sql`permission in ('read', 'write')`),
    check('api_tokens_organizations_ck', sql`cardinality(organizations) > 0`),
  ],
);

/**
 * The order in which job transactions commit: each transaction that applies a job's work (a chunk,
 * or a whole job run once) takes a value in its last statement, after every row lock it needs is
 * held, so two transactions that touch the same learner get values in the order they commit. It
 * orders the ledger's rows for audits and for replaying jobs through a model of docs/rules.md.
 */
export const commitOrder = pgSequence('commit_order');

/**
 * Finished jobs and events, so that a job re-added under the same jobId (or an event replayed
 * under the same event_id) returns its first result and applies nothing.
 */
export const jobResults = pgTable(
  'job_results',
  {
    key: text('key').primaryKey(),
    result: jsonb('result').notNull(),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /** `commit_order` of the transaction that applied the job and stored this result (null: stored on its own). */
    commitSeq: bigint('commit_seq', { mode: 'number' }),
  },
  (t) => [index('job_results_finished_idx').on(t.finishedAt)],
);

/**
 * The committed chunks of a bulk job that has not finished: a chunk's effects and its row commit
 * together, so a job run again after a crash skips them and reports the same results. A chunk is
 * named by the position of its first record and its length, so a run with another chunk size
 * (another process, another setting) still finds exactly what is applied.
 */
export const jobChunks = pgTable(
  'job_chunks',
  {
    key: text('key').notNull(),
    start: integer('start').notNull(),
    size: integer('size').notNull(),
    results: jsonb('results').notNull(),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /** `commit_order` of the transaction that applied the chunk (null while it is being applied). */
    commitSeq: bigint('commit_seq', { mode: 'number' }),
  },
  (t) => [primaryKey({ columns: [t.key, t.start] })],
);

/**
 * The transactional outbox of the outbound events (contract.md "Outbound events"). A row holds the
 * events of one topic that one statement wrote, in their order, as parallel arrays: a 1,000-learner
 * chunk writes one row rather than 1,000, which is what makes the events cheap to write and to read
 * (README "Performance", cost of the outbound events). Written in the transaction of the change it
 * reports, published by the relay, deleted by the daily maintenance once published and past
 * retention. `id` gives the order of the batches of one account and course (db/outbox.ts);
 * `event_ids` are the events' identities on the bus, the same on every publication. A row is never
 * updated: how much of it is published is its `outbox_unpublished` row.
 */
export const outboxBatches = pgTable('outbox_batches', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  topic: text('topic').notNull(),
  eventCount: integer('event_count').notNull(),
  eventIds: uuid('event_ids').array().notNull(),
  eventTypes: text('event_types').array().notNull(),
  userIds: bigint('user_ids', { mode: 'number' }).array().notNull(),
  courseKeys: text('course_keys').array().notNull(),
  /** The CE's state after the change (enrollment events), null elements for role events. */
  modes: text('modes').array().notNull(),
  isActive: boolean('is_active').array().notNull(),
  /** The organization of the program through which the role changed (role events). */
  orgKeys: text('org_keys').array().notNull(),
  /** The account's details and the CE's creation time, as they were at the change. */
  usernames: text('usernames').array().notNull(),
  emails: text('emails').array().notNull(),
  enrolledAt: timestamp('enrolled_at', { withTimezone: true, mode: 'date' }).array().notNull(),
  occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

/**
 * The batches not wholly published: inserted with them, deleted by the relay round that publishes
 * their last event, read a topic at a time (a stream full of undelivered entries, or slow to make
 * room, must not hold back the other one). `published` counts the events of the batch already published, the first ones:
 * a stream full of undelivered entries takes part of a batch and the rest waits. No foreign key:
 * its check would be one more look-up a batch, and the daily maintenance deletes only batches that
 * are no longer unpublished (db/outbox.ts).
 */
export const outboxUnpublished = pgTable(
  'outbox_unpublished',
  {
    batchId: bigint('batch_id', { mode: 'number' }).primaryKey(),
    /** The batch's topic: each stream's relay read starts at its own oldest batch. */
    topic: text('topic').notNull(),
    published: integer('published').notNull().default(0),
  },
  (t) => [index('outbox_unpublished_topic_idx').on(t.topic, t.batchId)],
);
