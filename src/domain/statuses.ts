/** The vocabularies of docs/contract.md. */
export const PROGRAM_STATUSES = ['enrolled', 'pending', 'suspended', 'canceled', 'ended'] as const;
export const COURSE_STATUSES = ['active', 'inactive'] as const;
export type ProgramStatus = (typeof PROGRAM_STATUSES)[number];
export type CourseStatus = (typeof COURSE_STATUSES)[number];

/** Per-learner results that are not a status; `course-not-found` comes only from course CSV uploads. */
export const ERROR_RESULTS = [
  'duplicated',
  'invalid-status',
  'conflict',
  'not-in-program',
  'not-found',
  'internal-error',
  'course-not-found',
] as const;

export const isProgramStatus = (s: string): s is ProgramStatus => (PROGRAM_STATUSES as readonly string[]).includes(s);
export const isCourseStatus = (s: string): s is CourseStatus => (COURSE_STATUSES as readonly string[]).includes(s);

/** CE modes that the masters track replaces when a program enrolls the learner (Open edX rule). */
export const CONVERTIBLE_MODES = ['audit', 'honor'];
export const MASTERS = 'masters';
