/**
 * The fault suite's tally: what each scenario adds to the suite's last line, one JSON line per
 * scenario in REPORT_FILE, summed up by test/faults/summary.ts. Apart from support.ts so that the
 * summary, run outside vitest, reads it without loading the test helpers.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export const REPORT_FILE = path.resolve(import.meta.dirname, '../../.data/faults/report.jsonl');

/** What one scenario adds to the suite's last line. */
export interface Tally {
  scenario: string;
  killed?: number;
  pg_cuts?: number;
  redis_restarts?: number;
  jobs?: number;
  lost?: number;
  duplicated?: number;
  violations?: number;
  /** Seconds from each kill to its jobs running again elsewhere. */
  resume_s?: number[];
}

export function report(tally: Tally): void {
  mkdirSync(path.dirname(REPORT_FILE), { recursive: true });
  appendFileSync(REPORT_FILE, `${JSON.stringify(tally)}\n`);
}
