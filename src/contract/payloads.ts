import { z } from 'zod';

/**
 * The job payloads of docs/contract.md, validated at the edge. Field names stay snake_case as on the
 * wire; unknown fields are dropped. Any 8-4-4-4-12 hex id is accepted as a UUID (the catalog's
 * ids are not all RFC 4122 variants) and lower-cased, so comparisons are exact.
 *
 * Every string obeys the contract's "Limits" (docs/contract.md, "Delivery, retries and
 * idempotency"): well-formed Unicode, no NUL, lengths in code points. Postgres refuses a lone
 * surrogate in jsonb, stores one as U+FFFD in text, and cannot index a value past ~2,700 bytes;
 * none of that may reach it, so a job fails here, naming the field, instead of retrying there.
 */
const uuid = z.guid().transform((v) => v.toLowerCase());

/** Code points of a well-formed string: each surrogate pair is one. */
export function codePointLength(value: string): number {
  let pairs = 0;
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) pairs++;
  }
  return value.length - pairs;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** No lone surrogate: the string can be encoded as UTF-8 (and stored by Postgres) as it is. */
export function isWellFormedUnicode(value: string): boolean {
  return !LONE_SURROGATE.test(value);
}
/** White space, controls, zero-width and other format or default-ignorable characters. */
const INVISIBLE_ONLY = /^[\p{White_Space}\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}]+$/u;

/** Any string of a payload: well-formed Unicode without NUL; `max` counts code points. */
const text = (max?: number) => {
  const base = z
    .string()
    .refine(isWellFormedUnicode, 'must be well-formed Unicode (no lone surrogates)')
    .refine((v) => !v.includes('\u0000'), 'must not contain NUL characters');
  return max === undefined
    ? base
    : base.refine((v) => codePointLength(v) <= max, `must be at most ${max.toLocaleString('en-US')} characters`);
};

/** A key: trimmed, then non-empty, not only invisible characters, at most `max` code points. */
const key = (max: number) =>
  text()
    // Also said before the trim, so that the JSON Schemas (which see the input) refuse "" too.
    .min(1, 'must not be empty')
    .transform((v) => v.trim())
    .pipe(
      z
        .string()
        .min(1, 'must not be empty')
        .refine((v) => !INVISIBLE_ONLY.test(v), 'must not be only invisible characters')
        .refine((v) => codePointLength(v) <= max, `must be at most ${max} characters`),
    );
/** The contract's 255 code points for student, organization, program and course keys. */
const KEY_MAX = 255;
const studentKey = key(KEY_MAX);
const eventId = text(KEY_MAX).pipe(z.string().min(1, 'must not be empty'));
const requestedBy = text(KEY_MAX).nullish();
const userId = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const mode = key(100);
const USERNAME_MAX = 150;
/** A curriculum's course keys and a program's courses. */
const MAX_PROGRAM_COURSES = 1_000;

export const upsertProgramPayload = z.object({
  program_uuid: uuid,
  program_key: key(KEY_MAX).nullish(),
  organization_key: key(KEY_MAX),
  curricula: z.array(
    z.object({
      curriculum_uuid: uuid,
      is_active: z.boolean(),
      course_keys: z.array(key(KEY_MAX)).max(MAX_PROGRAM_COURSES),
    }),
  ),
  courses: z
    .array(
      z.object({
        course_key: key(KEY_MAX),
        external_course_key: key(KEY_MAX).nullish(),
        modes: z.array(mode).default(['audit', 'masters']),
      }),
    )
    .max(MAX_PROGRAM_COURSES)
    .default([]),
});

export const writeActions = ['create', 'update', 'create_or_update'] as const;
export const MAX_WRITE_RECORDS = 100_000;

export const writeProgramEnrollmentsPayload = z.object({
  program_uuid: uuid,
  action: z.enum(writeActions),
  enrollments: z
    .array(
      z.object({
        student_key: studentKey,
        status: text(),
        curriculum_uuid: uuid.optional(),
      }),
    )
    .max(MAX_WRITE_RECORDS),
  requested_by: requestedBy,
});

export const writeProgramCourseEnrollmentsPayload = z.object({
  program_uuid: uuid,
  course_key: key(KEY_MAX),
  action: z.enum(writeActions),
  enrollments: z
    .array(
      z.object({
        student_key: studentKey,
        status: text(),
        course_staff: z.boolean().nullish(),
      }),
    )
    .max(MAX_WRITE_RECORDS),
  requested_by: requestedBy,
});

/**
 * `write-program-course-enrollments-upload` (queue `enrollments`): the job behind
 * `POST /api/v1/programs/{program_uuid}/course_enrollments/upload`. It is an addition to
 * docs/contract.md's job names, not part of them: the service adds it itself for an upload, producers
 * never send it. docs/contract.md has no job that writes several courses, and an upload of several courses
 * is one job (one `job_id`) there. It applies every row as `create_or_update`, course by course,
 * as `write-program-course-enrollments` would.
 *
 * ```json
 * { "program_uuid": "…", "course_staff_column": true,
 *   "enrollments": [ { "course_id": "CS101-F26", "student_key": "abc1", "status": "active", "course_staff": "true" } ] }
 * ```
 * - `course_id` is the CSV cell as sent (trimmed): a course's own key or its external key; one that
 *   names no course of the program gives its rows `course-not-found`.
 * - `course_staff` is the cell as sent: `"true"` grants, `"false"` revokes, `""` or absent leaves
 *   the role alone. `course_staff_column` says whether the CSV had that column, so that the result
 *   CSV echoes it exactly when the upload had it.
 */
export const writeProgramCourseEnrollmentsUploadPayload = z.object({
  program_uuid: uuid,
  course_staff_column: z.boolean().default(false),
  enrollments: z
    .array(
      z.object({
        // Any length: a course_id that names no course is a result (course-not-found), not an error.
        course_id: text()
          .transform((v) => v.trim())
          .pipe(z.string().min(1, 'must not be empty')),
        student_key: studentKey,
        status: text(),
        course_staff: z.enum(['true', 'false', '']).optional(),
      }),
    )
    .max(MAX_WRITE_RECORDS),
  requested_by: requestedBy,
});

export const linkProgramEnrollmentsPayload = z.object({
  program_uuid: uuid,
  links: z.array(z.object({ student_key: studentKey, username: key(USERNAME_MAX) })),
});

export const expireWaitingEnrollmentsPayload = z.object({
  expiration_days: z.number().min(0).default(60),
});

export const retireLearnerPayload = z.object({ user_id: userId });

export const accountCreatedPayload = z.object({
  event_id: eventId,
  user_id: userId,
  username: text(USERNAME_MAX).pipe(z.string().min(1, 'must not be empty')),
  email: text(254).nullish(),
  identities: z.array(
    z.object({
      organization_key: key(KEY_MAX),
      external_user_key: studentKey,
    }),
  ),
});

export const courseEnrollmentChangedPayload = z.object({
  event_id: eventId,
  user_id: userId,
  course_key: key(KEY_MAX),
  mode: text(100).pipe(z.string().min(1, 'must not be empty')),
  is_active: z.boolean(),
});

export type UpsertProgramPayload = z.infer<typeof upsertProgramPayload>;
export type WriteProgramEnrollmentsPayload = z.infer<typeof writeProgramEnrollmentsPayload>;
export type WriteProgramCourseEnrollmentsPayload = z.infer<typeof writeProgramCourseEnrollmentsPayload>;
export type WriteProgramCourseEnrollmentsUploadPayload = z.infer<typeof writeProgramCourseEnrollmentsUploadPayload>;
export type LinkProgramEnrollmentsPayload = z.infer<typeof linkProgramEnrollmentsPayload>;
export type ExpireWaitingEnrollmentsPayload = z.infer<typeof expireWaitingEnrollmentsPayload>;
export type RetireLearnerPayload = z.infer<typeof retireLearnerPayload>;
export type AccountCreatedPayload = z.infer<typeof accountCreatedPayload>;
export type CourseEnrollmentChangedPayload = z.infer<typeof courseEnrollmentChangedPayload>;

/** A failed reason names at most this many problems (docs/contract.md, "Payload errors"). */
export const MAX_PROBLEMS_NAMED = 100;
/** and is never longer than this, in UTF-8 bytes: a failed reason is kept in Redis for 7 days. */
export const MAX_FAILED_REASON_BYTES = 64 * 1024;

/**
 * `a.b: message; c: message`, the problems of an invalid payload as producers parse them: the
 * first 100, then `; and <n> more problems`. `(root)` names the payload itself.
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const named = issues
    .slice(0, MAX_PROBLEMS_NAMED)
    .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
    .join('; ');
  const more = issues.length - MAX_PROBLEMS_NAMED;
  return more > 0 ? `${named}; and ${more} more problems` : named;
}

/**
 * A failed reason within MAX_FAILED_REASON_BYTES: longer ones are cut on a code point boundary and
 * end with `…`. Whatever a job fails with (a database error quoting a value, say) stays bounded.
 */
export function capFailedReason(reason: string): string {
  if (reason.length <= MAX_FAILED_REASON_BYTES / 4 || Buffer.byteLength(reason) <= MAX_FAILED_REASON_BYTES)
    return reason;
  const ellipsis = '…';
  const budget = MAX_FAILED_REASON_BYTES - Buffer.byteLength(ellipsis);
  const bytes = Buffer.from(reason).subarray(0, budget);
  // Drop a code point cut in half: continuation bytes at the end, and the lead byte before them.
  let end = bytes.length;
  let back = end - 1;
  while (back >= 0 && (bytes[back]! & 0xc0) === 0x80) back--;
  if (back >= 0) {
    const lead = bytes[back]!;
    const width = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    if (back + width > end) end = back;
  }
  return bytes.subarray(0, end).toString('utf8') + ellipsis;
}
