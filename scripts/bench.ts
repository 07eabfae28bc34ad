/**
 * `npm run bench [-- --quick | --large | --runs N | --learners N | --events N | --profile]`
 *
 * Measures the service against the machine's own limits, in one run and on the same Redis and
 * Postgres, so that the ratios say how much of the hardware it turns into work (issue figures):
 *   (a) Postgres ceiling, (b) BullMQ ceiling, (c) per-event ceiling (scripts/bench/ceilings.ts);
 *   bulk writes of N learners: program enrollments (create), course enrollments of the same
 *   learners while waiting, then both again for N learners whose accounts are known (realized);
 *   `account-created` events that each realize a learner with two waiting PCEs: events/s at full
 *   speed, and latency from add to completion at an offered 1,000 events/s;
 *   with `--large`, ten N-learner writes into one program, the service's peak RSS and a deep page.
 * Each repetition runs in a database and queue prefix of its own, against a fresh service process
 * (`src/main.ts`, as `npm start` runs it); every figure is the median of the repetitions, with min
 * and max, and each ratio the median of the same-repetition ratios. Prints a table and writes
 * bench/results.json. Redis and Postgres: REDIS_URL / DATABASE_URL (an admin URL) when set, else
 * the local services when they answer, else private ones. Everything it creates is removed.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import postgres, { type Sql } from 'postgres';
import { loadConfig } from '../src/config.js';
import { runMigrations } from '../src/db/migrate.js';
import { locatePostgres, locateRedis } from '../src/infra/locate.js';
import { perEventCeiling, postgresCeiling, queueCeiling } from './bench/ceilings.js';
import { cleanUp, onCleanup } from './bench/cleanup.js';
import { type LargeFigures, runLarge } from './bench/large.js';
import { Profiler } from './bench/profile.js';
import { startServiceProcess } from './bench/service-process.js';
import { fmt, fmtSummary, type Summary, summarize } from './bench/stats.js';
import {
  accountEventsFullSpeed,
  accountEventsOffered,
  bulkWrite,
  COURSES,
  createProgram,
  outboxPublished,
  Producer,
  seedKnownAccounts,
} from './bench/workload.js';

// ---------------------------------------------------------------------------------------------
// Options

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    large: { type: 'boolean', default: false },
    runs: { type: 'string' },
    learners: { type: 'string' },
    events: { type: 'string' },
    rate: { type: 'string', default: '1000' },
    'offered-seconds': { type: 'string' },
    profile: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(`usage: npm run bench -- [options]
  --quick         a tenth of the sizes and one repetition (development)
  --large         also the scale figures: ten N-learner writes into one program
  --runs N        repetitions (3; 1 with --quick; 0 with --large: the scale figures alone)
  --learners N    learners of each bulk write (100000; 10000 with --quick)
  --events N      account-created events at full speed (4000; 400 with --quick)
  --rate N        events/s offered for the latency figure (1000)
  --offered-seconds N  how long that rate is offered (3; the events are min(--events, rate × N))
  --profile       per phase: statements (pg_stat_statements, when preloaded) and Redis commands
                  per chunk or event, and V8 CPU profiles of the service in bench/profiles/`);
  process.exit(0);
}
const positive = (name: string, value: string | undefined, fallback: number): number => {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer`);
    process.exit(2);
  }
  return n;
};
const scale = args.quick ? 10 : 1;
// `--runs 0 --large` measures the scale figures alone.
const RUNS = args.runs === '0' && args.large ? 0 : positive('runs', args.runs, args.quick ? 1 : 3);
const LEARNERS = positive('learners', args.learners, 100_000 / scale);
/**
 * 4,000 events, not 10,000: at the service's present rate (tens to a few hundred a second on a
 * shared 2-core machine) three runs of 10,000 do not fit the ten minutes the whole benchmark has;
 * 4,000 are still tens of seconds of steady state. `--events 10000` for the full count.
 */
const EVENTS = positive('events', args.events, 4_000 / scale);
const RATE = positive('rate', args.rate, 1000);
/**
 * The latency figure offers RATE events/s for a bounded time: its p99 needs a few thousand
 * samples, and a longer offer only grows the backlog a saturated service drains afterwards.
 */
const OFFERED_EVENTS = Math.min(EVENTS, RATE * positive('offered-seconds', args['offered-seconds'], 3));
const NOOP_JOBS = 20_000 / scale;
/** 5,000 jobs: several seconds at (c)'s rate, enough for a steady rate. */
const CEILING_EVENTS = 5_000 / scale;
const LARGE_JOBS = 10;
/** The scale figures always write 100,000-learner jobs (a tenth with --quick), whatever --learners says. */
const LARGE_LEARNERS = 100_000 / scale;
if (LEARNERS > 100_000) {
  console.error('--learners is at most 100,000: the most one write job takes (docs/contract.md)');
  process.exit(2);
}
if (EVENTS + OFFERED_EVENTS > LEARNERS) {
  console.error('--events and the offered events may be at most --learners: each event realizes a waiting learner');
  process.exit(2);
}
const { WORKER_CONCURRENCY: CONCURRENCY, ACCOUNTS_CONCURRENCY } = loadConfig({
  WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY,
  ACCOUNTS_CONCURRENCY: process.env.ACCOUNTS_CONCURRENCY,
});
/** The service's pool: connectDatabase's size for this concurrency (src/app.ts). */
const POOL_SIZE = Math.max(10, Math.min(CONCURRENCY, 40));
const PROFILE_DIR = path.resolve('bench/profiles');
/** `EVENT_BUS=off npm run bench` measures without the outbound events, and so without their cost. */
const EVENTS_ON = process.env.EVENT_BUS !== 'off';

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}
const status = (line: string) => process.stderr.write(`${line}\n`);

// ---------------------------------------------------------------------------------------------
// One repetition

interface RunFigures {
  pgRowsPerSecond: number;
  noopJobsPerSecond: number;
  perEventJobsPerSecond: number;
  programWaiting: number;
  courseWaiting: number;
  programRealized: number;
  courseRealized: number;
  /** The realized course write, from add until the relay published its last event (EVENT_BUS on). */
  courseRealizedPublished: number;
  /**
   * The same write of the program's two other courses with EVENT_BUS=off, one just before it and
   * one just after, as one rate: both learner counts over both times (NaN when the whole run has
   * it off).
   */
  courseRealizedWithoutEvents: number;
  /** Those two writes' own rates, before and after. */
  courseRealizedWithoutEventsBefore: number;
  courseRealizedWithoutEventsAfter: number;
  accountEventsPerSecond: number;
  accountP50: number;
  accountP99: number;
  accountOffered: number;
  peakRssMiB: number;
}

interface Stores {
  redisUrl: string;
  adminUrl: string;
  admin: Sql;
  redis: Redis;
}

/** A database (migrated) and a queue prefix of their own, removed afterwards. */
async function scratchSpace(stores: Stores, label: string) {
  const suffix = randomBytes(4).toString('hex');
  const databaseName = `pe_bench_${label}_${suffix}`;
  const prefix = `bench${suffix}`;
  await stores.admin.unsafe(`create database ${databaseName}`);
  const dropDatabase = onCleanup(
    `database ${databaseName}`,
    async () => void (await stores.admin.unsafe(`drop database if exists ${databaseName} with (force)`)),
  );
  const dropKeys = onCleanup(`redis keys ${prefix}:* and event streams ${prefix}-*`, async () => {
    await deleteKeys(stores.redis, `${prefix}:*`);
    await deleteKeys(stores.redis, `${prefix}-*`);
  });
  const url = new URL(stores.adminUrl);
  url.pathname = `/${databaseName}`;
  await runMigrations(url.toString());
  return {
    databaseUrl: url.toString(),
    prefix,
    async remove() {
      await dropKeys();
      await dropDatabase();
    },
  };
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

async function runOnce(stores: Stores, run: number): Promise<RunFigures> {
  const space = await scratchSpace(stores, `r${run}`);
  const sql = postgres(space.databaseUrl, { max: POOL_SIZE, onnotice: () => {} });
  const closeSql = onCleanup('bench connection', () => sql.end({ timeout: 5 }));
  try {
    status(`(a) Postgres ceiling: ${fmt(LEARNERS)} rows`);
    const pgRowsPerSecond = await postgresCeiling(sql, LEARNERS);
    status(`(b) BullMQ ceiling: ${fmt(NOOP_JOBS)} no-op jobs`);
    const noopJobsPerSecond = await queueCeiling(stores.redisUrl, space.prefix, NOOP_JOBS);
    // At the concurrency the service runs account events at (ACCOUNTS_CONCURRENCY).
    status(`(c) per-event ceiling: ${fmt(CEILING_EVENTS)} jobs at concurrency ${ACCOUNTS_CONCURRENCY}`);
    const perEventJobsPerSecond = await perEventCeiling(
      stores.redisUrl,
      space.prefix,
      sql,
      CEILING_EVENTS,
      ACCOUNTS_CONCURRENCY,
    );

    status(`starting the service (WORKER_CONCURRENCY ${CONCURRENCY}, ACCOUNTS_CONCURRENCY ${ACCOUNTS_CONCURRENCY})`);
    if (args.profile) mkdirSync(PROFILE_DIR, { recursive: true });
    const startService = (prefix: string, env?: Record<string, string>) =>
      startServiceProcess({
        redisUrl: stores.redisUrl,
        databaseUrl: space.databaseUrl,
        prefix,
        ...(env ? { env } : {}),
        ...(args.profile ? { cpuProfileDir: PROFILE_DIR } : {}),
      });
    // Both services start together, before anything is timed, instead of one stop and two starts
    // in the middle of the run: the EVENT_BUS=off one has a queue prefix of its own (so it takes
    // only the jobs sent to it) and the same database; with EVENT_BUS=off it writes no outbox
    // rows, so the other one's relay stays idle while it works.
    const offPrefix = `${space.prefix}off`;
    const [service, withoutEvents] = await Promise.all([
      startService(space.prefix),
      EVENTS_ON ? startService(offPrefix, { EVENT_BUS: 'off' }) : Promise.resolve(null),
    ]);
    const producer = await Producer.open(stores.redisUrl, space.prefix);
    const closeProducer = onCleanup('producer', () => producer.close());
    const offProducer = withoutEvents ? await Producer.open(stores.redisUrl, offPrefix) : null;
    const closeOffProducer = onCleanup('producer (EVENT_BUS=off)', async () => offProducer?.close());
    const profiler = args.profile ? await Profiler.open(sql, stores.redis) : null;
    const phase = <T>(label: string, units: number, unit: string, work: () => Promise<T>) =>
      profiler ? profiler.phase(label, units, unit, work) : work();
    const chunks = Math.ceil(LEARNERS / 1000);
    try {
      const program = await createProgram(producer);
      const waiting = Array.from({ length: LEARNERS }, (_, i) => `Waiting-${i}`);
      const realized = Array.from({ length: LEARNERS }, (_, i) => `Realized-${i}`);
      const [course, secondCourse, thirdCourse] = COURSES;
      const pe = { program_uuid: program };
      const pce = (course_key: string) => ({ program_uuid: program, course_key });

      status(`write-program-enrollments: ${fmt(LEARNERS)} learners, waiting`);
      const programWaiting = await phase('program write, waiting', chunks, 'chunk', () =>
        bulkWrite(producer, 'write-program-enrollments', pe, waiting, 'enrolled', 'enrolled'),
      );
      status(`write-program-course-enrollments: the same learners, waiting`);
      const courseWaiting = await phase('course write, waiting', chunks, 'chunk', () =>
        bulkWrite(producer, 'write-program-course-enrollments', pce(course), waiting, 'active', 'active'),
      );
      await seedKnownAccounts(sql, realized, 1_000_000);
      status(`write-program-enrollments: ${fmt(LEARNERS)} learners with known accounts (realized)`);
      const programRealized = await phase('program write, realized', chunks, 'chunk', () =>
        bulkWrite(producer, 'write-program-enrollments', pe, realized, 'enrolled', 'enrolled'),
      );
      // The cost of the outbound events (docs/contract.md "Outbound events"): the same realizing
      // write of the program's two other courses by a service with EVENT_BUS=off, one before the
      // write with events and one after it. Each write grows the tables the next one writes (a
      // course enrollment, a PCE and two history rows a learner), and a chunk's statements cost
      // more on larger tables whatever the events (README "Performance"): bracketed, the writes
      // without events run on tables as large as the write with them, on average.
      const writeWithoutEvents = (offProducer: Producer, courseKey: string, when: string) => {
        status(`write-program-course-enrollments: the same learners, realized, another course, EVENT_BUS=off, ${when}`);
        return phase(`course write, realized, EVENT_BUS=off, ${when}`, chunks, 'chunk', () =>
          bulkWrite(offProducer, 'write-program-course-enrollments', pce(courseKey), realized, 'active', 'active'),
        );
      };
      const offBefore = offProducer ? await writeWithoutEvents(offProducer, secondCourse, 'before') : null;
      status(`write-program-course-enrollments: the same learners, realized`);
      const courseRealized = await phase('course write, realized', chunks, 'chunk', async () => {
        const write = await bulkWrite(
          producer,
          'write-program-course-enrollments',
          pce(course),
          realized,
          'active',
          'active',
        );
        // With EVENT_BUS on, done once the LMS has been told: the relay published every event.
        const publishedAt = EVENTS_ON ? await outboxPublished(sql) : write.addedAt + write.ms;
        return { ...write, published: realized.length / (Math.max(write.ms, publishedAt - write.addedAt) / 1000) };
      });
      const offAfter = offProducer ? await writeWithoutEvents(offProducer, thirdCourse, 'after') : null;
      const courseRealizedWithoutEvents =
        offBefore && offAfter ? (2 * realized.length) / ((offBefore.ms + offAfter.ms) / 1000) : Number.NaN;

      // The learners the account events realize: a second waiting PCE each.
      const fullSpeed = waiting.slice(0, EVENTS);
      const offered = waiting.slice(EVENTS, EVENTS + OFFERED_EVENTS);
      await bulkWrite(
        producer,
        'write-program-course-enrollments',
        pce(secondCourse),
        [...fullSpeed, ...offered],
        'active',
        'active',
      );
      const runId = `bench-r${run}`;
      status(`account-created: ${fmt(EVENTS)} events at full speed`);
      const accountEventsPerSecond = await phase('account-created, full speed', EVENTS, 'event', () =>
        accountEventsFullSpeed(producer, runId, fullSpeed, 2_000_000),
      );
      status(`account-created: ${fmt(OFFERED_EVENTS)} events offered at ${fmt(RATE)}/s`);
      const latency = await phase(`account-created, offered ${RATE}/s`, OFFERED_EVENTS, 'event', () =>
        accountEventsOffered(producer, runId, offered, 3_000_000, RATE),
      );

      const figures: RunFigures = {
        pgRowsPerSecond,
        noopJobsPerSecond,
        perEventJobsPerSecond,
        programWaiting: programWaiting.rate,
        courseWaiting: courseWaiting.rate,
        programRealized: programRealized.rate,
        courseRealized: courseRealized.rate,
        courseRealizedPublished: courseRealized.published,
        courseRealizedWithoutEvents,
        courseRealizedWithoutEventsBefore: offBefore?.rate ?? Number.NaN,
        courseRealizedWithoutEventsAfter: offAfter?.rate ?? Number.NaN,
        accountEventsPerSecond,
        accountP50: latency.p50,
        accountP99: latency.p99,
        accountOffered: latency.offered,
        peakRssMiB: Math.max(service.peakRssMiB(), withoutEvents?.peakRssMiB() ?? 0),
      };
      status(
        `run ${run}: (a) ${fmt(pgRowsPerSecond)} rows/s, (c) ${fmt(perEventJobsPerSecond)} jobs/s; PE ${fmt(figures.programWaiting)}, ` +
          `PCE waiting ${fmt(figures.courseWaiting)}, PCE realized ${fmt(figures.courseRealized)} learners/s ` +
          `(published ${fmt(figures.courseRealizedPublished)}; EVENT_BUS=off ${fmt(courseRealizedWithoutEvents)}: ` +
          `${fmt(figures.courseRealizedWithoutEventsBefore)} before, ${fmt(figures.courseRealizedWithoutEventsAfter)} after); ` +
          `account-created ${fmt(accountEventsPerSecond)}/s, p99 ${fmt(latency.p99)} ms`,
      );
      return figures;
    } finally {
      await closeOffProducer();
      await closeProducer();
      await Promise.all([service.stop(), withoutEvents?.stop()]);
    }
  } finally {
    await closeSql();
    await space.remove();
  }
}

async function runLargeOnce(stores: Stores): Promise<LargeFigures> {
  const space = await scratchSpace(stores, 'large');
  try {
    status(`--large: ${LARGE_JOBS} writes of ${fmt(LARGE_LEARNERS)} learners into one program`);
    const service = await startServiceProcess({
      redisUrl: stores.redisUrl,
      databaseUrl: space.databaseUrl,
      prefix: space.prefix,
    });
    const producer = await Producer.open(stores.redisUrl, space.prefix);
    const closeProducer = onCleanup('producer', () => producer.close());
    try {
      return await runLarge(service, producer, LARGE_JOBS, LARGE_LEARNERS, status);
    } finally {
      await closeProducer();
      await service.stop();
    }
  } finally {
    await space.remove();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

interface Target {
  holds: boolean;
  text: string;
}
const atLeast = (value: number, bound: number): Target => ({ holds: value >= bound, text: `≥ ${bound}` });
const below = (value: number, bound: number, unit: string): Target => ({
  holds: value < bound,
  text: `< ${bound} ${unit}`,
});

function report(runs: RunFigures[], large: LargeFigures | null, machine: Record<string, string>): void {
  const figure = (pick: (r: RunFigures) => number) => summarize(runs.map(pick));
  const ratio = (pick: (r: RunFigures) => number, ceiling: (r: RunFigures) => number) =>
    summarize(runs.map((r) => pick(r) / ceiling(r)));
  const a = (r: RunFigures) => r.pgRowsPerSecond;
  const c = (r: RunFigures) => r.perEventJobsPerSecond;
  const ratios = {
    bulk_program_enrollments: ratio((r) => r.programWaiting, a),
    bulk_program_enrollments_realized: ratio((r) => r.programRealized, a),
    bulk_course_enrollments_waiting: ratio((r) => r.courseWaiting, a),
    bulk_course_enrollments_realized: ratio((r) => r.courseRealized, a),
    account_created: ratio((r) => r.accountEventsPerSecond, c),
    events_cost: ratio(
      (r) => r.courseRealizedPublished,
      (r) => r.courseRealizedWithoutEvents,
    ),
  };
  const p99 = figure((r) => r.accountP99);
  const targets: Record<string, Target> = {
    ...(runs.length
      ? {
          bulk_program_enrollments: atLeast(ratios.bulk_program_enrollments.median, 0.25),
          bulk_course_enrollments_waiting: atLeast(ratios.bulk_course_enrollments_waiting.median, 0.15),
          bulk_course_enrollments_realized: atLeast(ratios.bulk_course_enrollments_realized.median, 0.15),
          account_created: atLeast(ratios.account_created.median, 0.35),
          account_created_p99_ms: below(p99.median, 50, 'ms'),
          ...(EVENTS_ON ? { events_cost: atLeast(ratios.events_cost.median, 0.8) } : {}),
        }
      : {}),
    ...(large
      ? {
          large_last_vs_first: atLeast(large.lastVsFirst, 0.8),
          large_peak_rss_mib: below(large.peakRssMiB, 512, 'MiB'),
          large_page_p99_ms: below(large.pageP99, 50, 'ms'),
        }
      : {}),
  };
  const verdict = (key: string) => (targets[key] ? `${targets[key].text} ${targets[key].holds ? '✓' : '✗'}` : '');
  const n = fmt(LEARNERS);
  const rows: Array<[string, string, string, string]> = [];
  if (runs.length)
    rows.push(
      ['(a) Postgres ceiling: `unnest` upsert, 1,000 rows a statement', `${fmtSummary(figure(a))} rows/s`, '1', ''],
      [
        '(b) BullMQ ceiling: no-op jobs, concurrency 50',
        `${fmtSummary(figure((r) => r.noopJobsPerSecond))} jobs/s`,
        '',
        '',
      ],
      [
        `(c) per-event ceiling: 1 lock + 1-row upsert transaction, concurrency ${ACCOUNTS_CONCURRENCY}`,
        `${fmtSummary(figure(c))} jobs/s`,
        '1',
        '',
      ],
      [
        `\`write-program-enrollments\`, ${n} learners (create, waiting)`,
        `${fmtSummary(figure((r) => r.programWaiting))} learners/s`,
        `${fmtSummary(ratios.bulk_program_enrollments, 3)} × (a)`,
        verdict('bulk_program_enrollments'),
      ],
      [
        `\`write-program-course-enrollments\`, ${n} learners (waiting)`,
        `${fmtSummary(figure((r) => r.courseWaiting))} learners/s`,
        `${fmtSummary(ratios.bulk_course_enrollments_waiting, 3)} × (a)`,
        verdict('bulk_course_enrollments_waiting'),
      ],
      [
        `\`write-program-enrollments\`, ${n} learners (create, accounts known: realized)`,
        `${fmtSummary(figure((r) => r.programRealized))} learners/s`,
        `${fmtSummary(ratios.bulk_program_enrollments_realized, 3)} × (a)`,
        '',
      ],
      [
        `\`write-program-course-enrollments\`, ${n} learners (realized: course enrollments written)`,
        `${fmtSummary(figure((r) => r.courseRealized))} learners/s`,
        `${fmtSummary(ratios.bulk_course_enrollments_realized, 3)} × (a)`,
        verdict('bulk_course_enrollments_realized'),
      ],
      [
        `the same write of the other two courses with \`EVENT_BUS=off\`, one before it and one after`,
        `${fmtSummary(figure((r) => r.courseRealizedWithoutEvents))} learners/s`,
        '1',
        '',
      ],
      [
        'the realized course write with events on, until the relay published its last event',
        `${fmtSummary(figure((r) => r.courseRealizedPublished))} learners/s`,
        `${fmtSummary(ratios.events_cost, 3)} × \`EVENT_BUS=off\``,
        verdict('events_cost'),
      ],
      [
        `\`account-created\`, ${fmt(EVENTS)} events, each realizing 1 PE + 2 PCEs, full speed`,
        `${fmtSummary(figure((r) => r.accountEventsPerSecond))} events/s`,
        `${fmtSummary(ratios.account_created, 3)} × (c)`,
        verdict('account_created'),
      ],
      [
        `\`account-created\` offered at ${fmt(RATE)}/s for ${fmt(OFFERED_EVENTS)} events (${fmtSummary(figure((r) => r.accountOffered))}/s sent): add → completion`,
        `p50 ${fmtSummary(figure((r) => r.accountP50))} ms, p99 ${fmtSummary(p99)} ms`,
        '',
        verdict('account_created_p99_ms'),
      ],
      ['service peak RSS over the run', `${fmtSummary(figure((r) => r.peakRssMiB))} MiB`, '', ''],
    );
  if (large) {
    rows.push(
      [
        `--large: ${LARGE_JOBS} × ${fmt(LARGE_LEARNERS)} learners into one program, job ${LARGE_JOBS} vs job 1`,
        `${fmt(large.rates[0]!)} → ${fmt(large.rates.at(-1)!)} learners/s`,
        `${fmt(large.lastVsFirst, 2)}`,
        verdict('large_last_vs_first'),
      ],
      ['--large: service peak RSS', `${fmt(large.peakRssMiB)} MiB`, '', verdict('large_peak_rss_mib')],
      [
        `--large: 1,000-row page of the enrollment list, deep half (${fmt(large.pagesRead)} pages read)`,
        `p50 ${fmt(large.pageP50)} ms, p99 ${fmt(large.pageP99)} ms`,
        '',
        verdict('large_page_p99_ms'),
      ],
    );
  }
  const lines = [
    '',
    `Machine: ${Object.values(machine).join('; ')}.`,
    `${runs.length === 1 ? '1 run' : `Median of ${runs.length} runs (min–max)`}; ratios are same-run ratios.`,
    '',
    '| figure | rate | ratio | target |',
    '|---|---:|---:|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ];
  process.stdout.write(lines.join('\n'));

  const results = {
    at: new Date().toISOString(),
    machine,
    options: {
      runs: RUNS,
      learners: LEARNERS,
      events: EVENTS,
      rate: RATE,
      offered_events: OFFERED_EVENTS,
      concurrency: CONCURRENCY,
      accounts_concurrency: ACCOUNTS_CONCURRENCY,
      large: args.large,
    },
    figures: {
      pg_rows_per_s: figure(a),
      noop_jobs_per_s: figure((r) => r.noopJobsPerSecond),
      per_event_jobs_per_s: figure(c),
      bulk_program_enrollments_per_s: figure((r) => r.programWaiting),
      bulk_program_enrollments_realized_per_s: figure((r) => r.programRealized),
      bulk_course_enrollments_waiting_per_s: figure((r) => r.courseWaiting),
      bulk_course_enrollments_realized_per_s: figure((r) => r.courseRealized),
      bulk_course_enrollments_realized_published_per_s: figure((r) => r.courseRealizedPublished),
      bulk_course_enrollments_realized_without_events_per_s: figure((r) => r.courseRealizedWithoutEvents),
      account_created_per_s: figure((r) => r.accountEventsPerSecond),
      account_created_p50_ms: figure((r) => r.accountP50),
      account_created_offered_per_s: figure((r) => r.accountOffered),
      peak_rss_mib: figure((r) => r.peakRssMiB),
    },
    ratios: Object.fromEntries(Object.entries(ratios).map(([k, s]) => [k, s.median])),
    ratio_ranges: ratios as Record<string, Summary>,
    account_created_p99_ms: p99.median,
    ...(large
      ? {
          large_last_vs_first: large.lastVsFirst,
          large_peak_rss_mib: large.peakRssMiB,
          large_page_p99_ms: large.pageP99,
          large_rates_per_s: large.rates,
        }
      : {}),
    targets,
  };
  mkdirSync('bench', { recursive: true });
  writeFileSync('bench/results.json', `${JSON.stringify(results, null, 2)}\n`);
  status('wrote bench/results.json');
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const redisService = await locateRedis();
  onCleanup(`redis (${redisService.source})`, () => redisService.stop());
  const postgresService = await locatePostgres({
    // A throwaway cluster with Postgres's default durability, so commits cost what they cost.
    dataDir: () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'pe-bench-pg-'));
      onCleanup('embedded postgres data', async () => rmSync(dir, { recursive: true, force: true }));
      return path.join(dir, 'data');
    },
  });
  onCleanup(`postgres (${postgresService.source})`, () => postgresService.stop());
  const admin = postgres(postgresService.url, { max: 1, onnotice: () => {} });
  onCleanup('admin connection', () => admin.end({ timeout: 5 }));
  const redis = new Redis(redisService.url, { maxRetriesPerRequest: null });
  onCleanup('redis connection', async () => void (await redis.quit().catch(() => redis.disconnect())));
  const stores: Stores = { redisUrl: redisService.url, adminUrl: postgresService.url, admin, redis };

  const [{ server_version: pgVersion }] = await admin<[{ server_version: string }]>`show server_version`;
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? '?';
  const cpus = os.cpus();
  const machine = {
    cpus: `${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'})`,
    memory: `${fmt(os.totalmem() / 2 ** 30, 1)} GiB`,
    node: `Node ${process.version}`,
    postgres: `Postgres ${pgVersion} (${postgresService.source})`,
    redis: `Redis ${redisVersion} (${redisService.source})`,
    load: `load average ${os
      .loadavg()
      .map((l) => fmt(l, 1))
      .join(' ')} at start`,
  };

  const runs: RunFigures[] = [];
  for (let run = 1; run <= RUNS; run++) {
    status(`— run ${run} of ${RUNS}`);
    runs.push(await runOnce(stores, run));
  }
  const large = args.large ? await runLargeOnce(stores) : null;
  report(runs, large, machine);
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = 1;
} finally {
  status('cleaning up');
  await cleanUp();
}
process.exit(exitCode);
