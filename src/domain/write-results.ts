import { ERROR_RESULTS } from './statuses.js';

/** A learner's record in a write job, after trimming. */
export interface SentRecord {
  /** Position in the job's `enrollments` array. */
  index: number;
  /** The key as sent, trimmed: results are keyed by it. */
  sent: string;
  /** The key compared case-insensitively. */
  lower: string;
}

export interface WriteResult {
  code: 200 | 204 | 207 | 422;
  results: Record<string, string>;
  counts: Record<string, number>;
}

/**
 * Splits a job's records into those to apply and the duplicated spellings: a key that appears
 * twice or more, in any case, is `duplicated` for every spelling sent and none of its records is
 * applied (docs/rules.md rule 3; Open edX kept the third `abc` of `abc, ABC, abc`, which we do not).
 */
export function separateDuplicates<R extends SentRecord>(
  records: readonly R[],
): { unique: R[]; duplicated: Set<string> } {
  const byLower = new Map<string, R[]>();
  for (const r of records) {
    const group = byLower.get(r.lower);
    if (group) group.push(r);
    else byLower.set(r.lower, [r]);
  }
  const unique: R[] = [];
  const duplicated = new Set<string>();
  for (const group of byLower.values()) {
    if (group.length === 1) unique.push(group[0]!);
    else for (const r of group) duplicated.add(r.sent);
  }
  unique.sort((a, b) => a.index - b.index);
  return { unique, duplicated };
}

/**
 * The `duplicated` of separateDuplicates alone: every spelling of a key sent twice or more. For
 * the chunk loop, which needs no list of the rest: without it and its sort, 100,000 records take
 * half the time in the one synchronous step before the first chunk.
 */
export function duplicatedSpellings(records: readonly SentRecord[]): Set<string> {
  const firstSpelling = new Map<string, string>();
  const duplicated = new Set<string>();
  for (const r of records) {
    const first = firstSpelling.get(r.lower);
    if (first === undefined) firstSpelling.set(r.lower, r.sent);
    else duplicated.add(first).add(r.sent);
  }
  return duplicated;
}

/** `code` and `counts` as Open edX computes its HTTP status: 204 none, 200 all ok, 422 none ok, else 207. */
export function summarize(results: Record<string, string>): WriteResult {
  const { code, counts } = codeAndCounts(Object.values(results));
  return { code, results, counts };
}

/** The `code` and `counts` of a list of per-learner results (one entry per learner, or per learner and course). */
export function codeAndCounts(values: Iterable<string>): Pick<WriteResult, 'code' | 'counts'> {
  const counts: Record<string, number> = {};
  let ok = 0;
  let total = 0;
  for (const value of values) {
    counts[value] = (counts[value] ?? 0) + 1;
    total += 1;
    if (!(ERROR_RESULTS as readonly string[]).includes(value)) ok += 1;
  }
  const code = total === 0 ? 204 : ok === total ? 200 : ok === 0 ? 422 : 207;
  return { code, counts };
}

/**
 * One line of a course CSV upload's result: the row's `course_id` and `student_key` as sent (trimmed)
 * and the learner's result in that course; `course_staff` echoes the row's cell, present exactly when
 * the upload had that column.
 */
export interface CourseUploadResultRow {
  course_id: string;
  student_key: string;
  status: string;
  course_staff?: string;
}

/**
 * The result of `write-program-course-enrollments-upload`: like the write jobs' results, with one
 * entry per `course_id` as sent and distinct `student_key` spelling, in the order the rows came, so
 * that the result CSV can print `course_id,student_key,status[,course_staff]`.
 */
export interface CourseUploadResult {
  code: WriteResult['code'];
  results: CourseUploadResultRow[];
  counts: Record<string, number>;
  /** Whether the upload had a course_staff column (and so the result CSV has one). */
  course_staff_column: boolean;
}
