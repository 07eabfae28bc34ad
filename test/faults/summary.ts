/**
 * The fault suite's last line, summed over the scenarios that ran (test/faults/support.ts
 * `report`). Exits 1 when anything was lost, duplicated or broken, when a kill took 10 s or more
 * to resume, or when no scenario reported.
 */
import { existsSync, readFileSync } from 'node:fs';
import { REPORT_FILE, type Tally } from './report.js';

const tallies: Tally[] = existsSync(REPORT_FILE)
  ? readFileSync(REPORT_FILE, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Tally)
  : [];
const sum = (field: 'killed' | 'pg_cuts' | 'redis_restarts' | 'jobs' | 'lost' | 'duplicated' | 'violations') =>
  tallies.reduce((n, t) => n + (t[field] ?? 0), 0);
const resumes = tallies.flatMap((t) => t.resume_s ?? []).sort((a, b) => a - b);
const p95 = resumes.length ? resumes[Math.min(resumes.length - 1, Math.ceil(resumes.length * 0.95) - 1)]! : 0;

for (const t of tallies) console.log(`  ${t.scenario}: ${JSON.stringify({ ...t, scenario: undefined })}`);
const ok = tallies.length > 0 && sum('lost') === 0 && sum('duplicated') === 0 && sum('violations') === 0 && p95 < 10;
console.log(
  `faults: killed=${sum('killed')} pg_cuts=${sum('pg_cuts')} redis_restarts=${sum('redis_restarts')} jobs=${sum('jobs')} lost=${sum('lost')} duplicated=${sum('duplicated')} violations=${sum('violations')} resume_p95_s=${p95.toFixed(1)}`,
);
process.exit(ok ? 0 : 1);
