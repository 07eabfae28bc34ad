import { z } from 'zod';

/**
 * The job results of docs/contract.md "Queues", as zod schemas: the handlers' result types, the
 * typed client's parsing of what it waits for, and the JSON Schemas of `schemas/` (`npm run schemas`)
 * all come from these.
 */

const writeCode = z.union([z.literal(200), z.literal(204), z.literal(207), z.literal(422)]);

/** docs/contract.md "Result of both write jobs". */
export const writeResult = z.object({
  code: writeCode,
  results: z.record(z.string(), z.string()),
  counts: z.record(z.string(), z.number().int().min(0)),
});

export const upsertProgramResult = z.object({ program_uuid: z.string() });

export const linkProgramEnrollmentsResult = z.object({ errors: z.record(z.string(), z.string()) });

export const expireWaitingEnrollmentsResult = z.object({
  removed: z.object({
    program_enrollments: z.number().int().min(0),
    program_course_enrollments: z.number().int().min(0),
  }),
});

export const retireLearnerResult = z.object({ retired: z.number().int().min(0) });

export const accountCreatedResult = z.object({
  linked: z.array(
    z.object({
      program_uuid: z.string(),
      student_key: z.string(),
      course_keys: z.array(z.string()),
    }),
  ),
});

export const courseEnrollmentChangedResult = z.object({
  course_key: z.string(),
  mode: z.string(),
  is_active: z.boolean(),
});

/** The service's own course upload job (src/queue/payloads.ts): one row per course and learner. */
export const writeProgramCourseEnrollmentsUploadResult = z.object({
  code: writeCode,
  results: z.array(
    z.object({
      course_id: z.string(),
      student_key: z.string(),
      status: z.string(),
      course_staff: z.string().optional(),
    }),
  ),
  counts: z.record(z.string(), z.number().int().min(0)),
  course_staff_column: z.boolean(),
});

export type WriteResult = z.infer<typeof writeResult>;
export type UpsertProgramResult = z.infer<typeof upsertProgramResult>;
export type LinkResult = z.infer<typeof linkProgramEnrollmentsResult>;
export type ExpiryResult = z.infer<typeof expireWaitingEnrollmentsResult>;
export type RetireResult = z.infer<typeof retireLearnerResult>;
export type AccountCreatedResult = z.infer<typeof accountCreatedResult>;
export type CourseEnrollmentChangedResult = z.infer<typeof courseEnrollmentChangedResult>;
