/**
 * History rows (table `history`): one per create, change or delete of a PE, PCE or CE.
 * `changes` maps each field that changed to `[old, new]`; `old` is null on `created`.
 *
 *  entity                     action    changes
 *  program_enrollment         created   student_key, status, curriculum_uuid, and user_id when realized
 *  program_enrollment         changed   status; user_id (linked [null, id], unlinked [id, null]);
 *                                       student_key on retirement ([null, "retired_…"]: the old key is
 *                                       never kept)
 *  program_course_enrollment  created   course_key, status, and course_enrollment_id when realized
 *  program_course_enrollment  changed   status; course_enrollment_id (realized or detached)
 *  course_enrollment          created   user_id, course_key, mode, is_active
 *  course_enrollment          changed   mode, is_active
 *
 * PE and PCE rows carry `program_enrollment_id`, so a learner's history is one indexed lookup.
 */
export type Entity = 'program_enrollment' | 'program_course_enrollment' | 'course_enrollment';
export type Action = 'created' | 'changed' | 'deleted';
export type Changes = Record<string, [unknown, unknown]>;

export interface HistoryRow {
  entity: Entity;
  entityId: number;
  programEnrollmentId: number | null;
  action: Action;
  changes: Changes;
  /**
   * The course of a PCE or CE row, when the writer has it at hand; otherwise `insertHistory` reads
   * it from the row (db/history.ts).
   */
  courseKey?: string;
}
