/** A program as the catalog describes it (loaded by upsert-program). Pure data, no I/O. */
export interface Program {
  programUuid: string;
  programKey: string | null;
  organizationKey: string;
  curricula: Array<{ curriculumUuid: string; isActive: boolean; courseKeys: string[] }>;
  /** course_key -> the program's external key for it, for the courses the catalog listed. */
  externalCourseKeys: Map<string, string | null>;
}

/** The first active curriculum listed, or null when none is active. */
export function defaultCurriculum(program: Program): string | null {
  return program.curricula.find((c) => c.isActive)?.curriculumUuid ?? null;
}

/** A course is in the program when its key is in a curriculum marked active. */
export function programCourseKeys(program: Program): Set<string> {
  return new Set(program.curricula.filter((c) => c.isActive).flatMap((c) => c.courseKeys));
}

/**
 * Resolves a course named by its own key or by the program's external key for it; null when the
 * course is not in the program. The own key wins when a string is both.
 */
export function resolveCourseKey(program: Program, sent: string): string | null {
  const inProgram = programCourseKeys(program);
  if (inProgram.has(sent)) return sent;
  for (const [courseKey, external] of program.externalCourseKeys) {
    if (external !== null && external === sent && inProgram.has(courseKey)) return courseKey;
  }
  return null;
}
