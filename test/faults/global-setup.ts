import { rmSync } from 'node:fs';
import path from 'node:path';
import { REPORT_FILE } from './report.js';

/** A fresh tally and fresh service logs for each run of the suite (summary.ts reads the tally). */
export default function setup() {
  rmSync(REPORT_FILE, { force: true });
  rmSync(path.join(path.dirname(REPORT_FILE), 'logs'), { recursive: true, force: true });
}
