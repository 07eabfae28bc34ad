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
 * applied (SPEC rule 3; Open edX kept the third `abc` of `abc, ABC, abc`, which we do not).
 */
export function separateDuplicates<R extends SentRecord>(records: readonly R[]): { unique: R[]; duplicated: Set<string> } {
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

/** `code` and `counts` as Open edX computes its HTTP status: 204 none, 200 all ok, 422 none ok, else 207. */
export function summarize(results: Record<string, string>): WriteResult {
  const counts: Record<string, number> = {};
  let ok = 0;
  let total = 0;
  for (const value of Object.values(results)) {
    counts[value] = (counts[value] ?? 0) + 1;
    total += 1;
    if (!(ERROR_RESULTS as readonly string[]).includes(value)) ok += 1;
  }
  const code = total === 0 ? 204 : ok === total ? 200 : ok === 0 ? 422 : 207;
  return { code, results, counts };
}
