import { z } from 'zod';

/**
 * The job payloads of docs/contract.md, validated at the edge. Field names stay snake_case as on the
 * wire; unknown fields are dropped. Any 8-4-4-4-12 hex id is accepted as a UUID (the catalog's
 * ids are not all RFC 4122 variants) and lower-cased, so comparisons are exact.
 */
const uuid = z.guid().transform((v) => v.toLowerCase());
// Postgres text cannot hold NUL: refuse it here, with the field's name, rather than fail in SQL.
const noNul = (v: string) => !v.includes('\u0000');
const trimmed = (max: number) =>
  z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)
    .refine(noNul, 'must not contain NUL characters');
const studentKey = trimmed(255);
const text = () => z.string().refine(noNul, 'must not contain NUL characters');
const eventId = z
  .string()
  .min(1, 'must not be empty')
  .max(255, 'must be at most 255 characters')
  .refine(noNul, 'must not contain NUL characters');
const userId = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

export const upsertProgramPayload = z.object({
  program_uuid: uuid,
  program_key: text().nullish(),
  organization_key: trimmed(255),
  curricula: z.array(
    z.object({
      curriculum_uuid: uuid,
      is_active: z.boolean(),
      course_keys: z.array(trimmed(255)),
    }),
  ),
  courses: z
    .array(
      z.object({
        course_key: trimmed(255),
        external_course_key: text().pipe(z.string().trim().max(255)).nullish(),
        modes: z.array(trimmed(100)).default(['audit', 'masters']),
      }),
    )
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
        status: z.string(),
        curriculum_uuid: uuid.optional(),
      }),
    )
    .max(MAX_WRITE_RECORDS),
  requested_by: text().nullish(),
});

export const writeProgramCourseEnrollmentsPayload = z.object({
  program_uuid: uuid,
  course_key: trimmed(255),
  action: z.enum(writeActions),
  enrollments: z
    .array(
      z.object({
        student_key: studentKey,
        status: z.string(),
        course_staff: z.boolean().nullish(),
      }),
    )
    .max(MAX_WRITE_RECORDS),
  requested_by: text().nullish(),
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
        course_id: text().pipe(z.string().trim().min(1, 'must not be empty')),
        student_key: studentKey,
        status: z.string(),
        course_staff: z.enum(['true', 'false', '']).optional(),
      }),
    )
    .max(MAX_WRITE_RECORDS),
  requested_by: text().nullish(),
});

export const linkProgramEnrollmentsPayload = z.object({
  program_uuid: uuid,
  links: z.array(z.object({ student_key: studentKey, username: trimmed(255) })),
});

export const expireWaitingEnrollmentsPayload = z.object({
  expiration_days: z.number().min(0).default(60),
});

export const retireLearnerPayload = z.object({ user_id: userId });

export const accountCreatedPayload = z.object({
  event_id: eventId,
  user_id: userId,
  username: text().pipe(z.string().min(1, 'must not be empty')),
  email: text().nullish(),
  identities: z.array(
    z.object({
      organization_key: trimmed(255),
      external_user_key: studentKey,
    }),
  ),
});

export const courseEnrollmentChangedPayload = z.object({
  event_id: eventId,
  user_id: userId,
  course_key: trimmed(255),
  mode: text().pipe(z.string().min(1, 'must not be empty').max(100, 'must be at most 100 characters')),
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

/** `invalid payload: a.b: message; c: message`, the failed reason producers parse. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `${i.path.map(String).join('.') || '(payload)'}: ${i.message}`).join('; ');
}
