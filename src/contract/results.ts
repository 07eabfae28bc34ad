/** The results of the jobs that are not bulk writes, as docs/contract.md "Queues" gives them. */
export interface UpsertProgramResult {
  program_uuid: string;
}

export interface AccountCreatedResult {
  linked: Array<{ program_uuid: string; student_key: string; course_keys: string[] }>;
}

export interface CourseEnrollmentChangedResult {
  course_key: string;
  mode: string;
  is_active: boolean;
}

export interface LinkResult {
  errors: Record<string, string>;
}

export interface ExpiryResult {
  removed: { program_enrollments: number; program_course_enrollments: number };
}

export interface RetireResult {
  retired: number;
}
