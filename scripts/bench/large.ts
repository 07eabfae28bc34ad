/**
 * `--large`: ten 100,000-learner program writes into one program (1,000,000 PEs), one after the
 * other; then the program's enrollment list read through its cursor, 1,000 rows a page.
 */
import { BENCH_API_TOKEN, type ServiceProcess } from './service-process.js';
import { percentile } from './stats.js';
import { bulkWrite, createProgram, type Producer } from './workload.js';

export interface LargeFigures {
  /** Learners/s of each job, in order. */
  rates: number[];
  lastVsFirst: number;
  peakRssMiB: number;
  /** Latency of the pages past the middle of the list, ms. */
  pageP50: number;
  pageP99: number;
  pagesRead: number;
}

export async function runLarge(
  service: ServiceProcess,
  producer: Producer,
  jobs: number,
  learnersPerJob: number,
  status: (line: string) => void,
): Promise<LargeFigures> {
  const programUuid = await createProgram(producer);
  const rates: number[] = [];
  for (let j = 0; j < jobs; j++) {
    const keys = Array.from({ length: learnersPerJob }, (_, i) => `Large-${j}-${i}`);
    const { rate } = await bulkWrite(
      producer,
      'write-program-enrollments',
      { program_uuid: programUuid },
      keys,
      'enrolled',
      'enrolled',
    );
    rates.push(rate);
    status(`  job ${j + 1}/${jobs}: ${Math.round(rate)} learners/s`);
  }

  // Every page in order, through the `next` links; the deep half is what is reported.
  status(`  reading the ${jobs * learnersPerJob} enrollments, 1,000 a page`);
  const times: number[] = [];
  let next: string | null = `${service.url}/api/v1/programs/${programUuid}/enrollments?page_size=1000`;
  while (next) {
    const started = performance.now();
    const response = await fetch(next, { headers: { authorization: `Bearer ${BENCH_API_TOKEN}` } });
    if (response.status !== 200) throw new Error(`page read answered ${response.status}: ${await response.text()}`);
    const page = (await response.json()) as { next: string | null; results: unknown[] };
    times.push(performance.now() - started);
    next = page.next;
  }
  const deep = times.slice(Math.floor(times.length / 2)).sort((a, b) => a - b);
  return {
    rates,
    lastVsFirst: rates.at(-1)! / rates[0]!,
    peakRssMiB: service.peakRssMiB(),
    pageP50: percentile(deep, 50),
    pageP99: percentile(deep, 99),
    pagesRead: times.length,
  };
}
