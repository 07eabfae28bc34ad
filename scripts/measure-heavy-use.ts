/**
 * Heavy use, measured against the service as `npm start` runs it (a process of its own, on a
 * database and queue prefix of its own), for the figures of README "Heavy use":
 *
 *  1. Redis memory of a finished 100,000-record write: `MEMORY USAGE` of its job hash, and what its
 *     completion added to the queue's event stream, right after it finished and once the service
 *     has trimmed it (src/queue/large-results.ts).
 *  2. `/healthz` latency while a 5 MiB CSV upload is parsed.
 *  3. 20 writes of 100,000 records queued at once: the service's peak RSS, and the wait (added →
 *     started) of 10-record writes added behind them.
 *
 *   npx tsx scripts/measure-heavy-use.ts [--jobs 20] [--records 100000] [--window 300] [--full]
 *                                        [--keep 60] [--skip redis|upload|bulk]
 *
 * `--window` bounds phase 3 in seconds (every bulk job holds its records only while it runs, at
 * most BULK_CONCURRENCY at once, so the peak is reached in the first minutes); `--full` waits for
 * every bulk job instead. `--keep` is the service's KEEP_LARGE_COMPLETED_SECONDS (300 by default;
 * shorter here so that phase 1 sees the trim). EVENT_BUS=off measures without the outbound events.
 * REDIS_URL / DATABASE_URL (an admin URL), else the local defaults.
 * The machine's load average is printed with the figures: a loaded machine is slower, not smaller.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { cleanUp, onCleanup } from './bench/cleanup.js';
import { BENCH_API_TOKEN, startServiceProcess } from './bench/service-process.js';

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20' },
    records: { type: 'string', default: '100000' },
    window: { type: 'string', default: '300' },
    keep: { type: 'string', default: '60' },
    full: { type: 'boolean', default: false },
    skip: { type: 'string', multiple: true, default: [] },
  },
});
const JOBS = Number(args.jobs);
const RECORDS = Number(args.records);
const WINDOW_S = Number(args.window);
const skip = new Set(args.skip);

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const MiB = 1024 * 1024;

const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
const say = (line: string) => console.log(line);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

function writePayload(programUuid: string, label: string, n: number) {
  return {
    program_uuid: programUuid,
    action: 'create_or_update',
    enrollments: Array.from({ length: n }, (_, i) => ({ student_key: `${label}-${i}`, status: 'enrolled' })),
  };
}

async function finished(queue: Queue, id: string, timeoutMs: number): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await queue.getJobState(id);
    if (state === 'completed' || state === 'failed') {
      const job = await Job.fromId(queue, id);
      if (!job) throw new Error(`job ${id} was removed before it was read`);
      if (state === 'failed') throw new Error(`job ${id} failed: ${job.failedReason}`);
      return job;
    }
    if (Date.now() > deadline) throw new Error(`job ${id} did not finish within ${timeoutMs} ms (${state})`);
    await sleep(200);
  }
}

async function main() {
  say(`machine: ${os.cpus().length} CPUs, ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB, Node ${process.version}`);
  say(`load average at start: ${load()}`);
  const database = `measure_${randomBytes(4).toString('hex')}`;
  const prefix = `measure${randomBytes(4).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${database}`);
  onCleanup(`database ${database}`, async () => {
    await admin.unsafe(`drop database if exists ${database} with (force)`);
    await admin.end();
  });
  const databaseUrl = new URL(adminUrl);
  databaseUrl.pathname = `/${database}`;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  onCleanup(`Redis keys under ${prefix}`, async () => {
    for (const pattern of [`${prefix}:*`, `${prefix}-*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.unlink(...keys);
      } while (cursor !== '0');
    }
    redis.disconnect();
  });
  const enrollments = new Queue('enrollments', { connection: redis, prefix });
  onCleanup('producer queue', () => enrollments.close());

  const service = await startServiceProcess({
    redisUrl,
    databaseUrl: databaseUrl.toString(),
    prefix,
    env: {
      LOG_LEVEL: 'warn',
      KEEP_LARGE_COMPLETED_SECONDS: args.keep,
    },
  });
  say(`service: pid ${service.pid}, ${service.url}, RSS after start ${rssMiB(service.pid).rss.toFixed(0)} MiB`);

  const programUuid = randomUUID();
  const upsert = await enrollments.add('upsert-program', {
    program_uuid: programUuid,
    organization_key: 'MeasureU',
    program_key: 'measure',
    curricula: [{ curriculum_uuid: randomUUID(), is_active: true, course_keys: ['course-v1:MeasureU+M1+2026'] }],
    courses: [{ course_key: 'course-v1:MeasureU+M1+2026', modes: ['masters'] }],
  });
  await finished(enrollments, upsert.id!, 120_000);

  // 1. Redis memory of one finished bulk write.
  if (!skip.has('redis')) {
    const eventsKey = `${prefix}:enrollments:events`;
    const eventsBefore = Number((await redis.call('MEMORY', 'USAGE', eventsKey, 'SAMPLES', '0')) ?? 0);
    const started = Date.now();
    const job = await enrollments.add('write-program-enrollments', writePayload(programUuid, 'mem', RECORDS));
    const done = await finished(enrollments, job.id!, 60 * 60_000);
    const hashKey = `${prefix}:enrollments:${job.id}`;
    const hash = Number((await redis.call('MEMORY', 'USAGE', hashKey, 'SAMPLES', '0')) ?? 0);
    const eventsAfter = Number((await redis.call('MEMORY', 'USAGE', eventsKey, 'SAMPLES', '0')) ?? 0);
    const [dataBytes, resultBytes] = await Promise.all([
      redis.hstrlen(hashKey, 'data'),
      redis.hstrlen(hashKey, 'returnvalue'),
    ]);
    say(
      `redis: a finished ${RECORDS}-record write (${((Date.now() - started) / 1000).toFixed(0)} s): ` +
        `job hash ${(hash / MiB).toFixed(2)} MiB (data ${(dataBytes / MiB).toFixed(2)} MiB, ` +
        `returnvalue ${(resultBytes / MiB).toFixed(2)} MiB), event stream +${((eventsAfter - eventsBefore) / MiB).toFixed(2)} MiB; ` +
        `code ${(done.returnvalue as { code?: number }).code}`,
    );
    // What is left once the service trims finished large jobs (`--keep` seconds after they finish).
    const deadline = Date.now() + (Number(args.keep) + 60) * 1000;
    let left = hash;
    while (Date.now() < deadline) {
      left = Number((await redis.call('MEMORY', 'USAGE', hashKey, 'SAMPLES', '0')) ?? 0);
      if (left < hash / 10) break;
      await sleep(1_000);
    }
    const eventsLater = Number((await redis.call('MEMORY', 'USAGE', eventsKey, 'SAMPLES', '0')) ?? 0);
    say(
      `redis: ${((Date.now() - (done.finishedOn ?? Date.now())) / 1000).toFixed(0)} s after it finished: ` +
        `job hash ${(left / MiB).toFixed(3)} MiB, event stream +${((eventsLater - eventsBefore) / MiB).toFixed(2)} MiB`,
    );
    say(`load average: ${load()}`);
  }

  // 2. /healthz while a 5 MiB upload is parsed.
  if (!skip.has('upload')) {
    // 5 MiB in at most 100,000 rows (a write's limit): keys padded to fill the file.
    const rows: string[] = ['student_key,status'];
    let bytes = rows[0]!.length + 1;
    const width = Math.floor((5 * MiB - 64) / RECORDS) - ',enrolled\n'.length;
    for (let i = 0; bytes + width + 10 < 5 * MiB && i < RECORDS; i++) {
      const line = `${`upload-learner-${i}`.padEnd(width, 'x')},enrolled`;
      rows.push(line);
      bytes += line.length + 1;
    }
    const csv = `${rows.join('\n')}\n`;
    const form = new FormData();
    form.append('file', new Blob([csv], { type: 'text/csv' }), 'big.csv');
    const probes: number[] = [];
    let uploading = true;
    const probing = (async () => {
      while (uploading) {
        const t0 = performance.now();
        await (await fetch(`${service.url}/healthz`)).arrayBuffer();
        probes.push(performance.now() - t0);
        await sleep(10);
      }
    })();
    const t0 = performance.now();
    const answer = await fetch(`${service.url}/api/v1/programs/${programUuid}/enrollments/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BENCH_API_TOKEN}` },
      body: form,
    });
    const uploadMs = performance.now() - t0;
    uploading = false;
    await probing;
    const sorted = [...probes].sort((a, b) => a - b);
    const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor((q / 100) * sorted.length))]!;
    say(
      `upload: ${(Buffer.byteLength(csv) / MiB).toFixed(2)} MiB, ${rows.length - 1} rows answered ${answer.status} ` +
        `in ${uploadMs.toFixed(0)} ms; /healthz meanwhile: ${probes.length} probes, p50 ${p(50).toFixed(1)} ms, ` +
        `p99 ${p(99).toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms; load average ${load()}`,
    );
    if (answer.status === 202) {
      const { job_id } = (await answer.json()) as { job_id: string };
      // Not measured further; removed so that phase 3 starts from an empty queue.
      await enrollments.remove(job_id).catch(() => {});
    }
  }

  // 3. Many bulk writes queued; small writes behind them; the service's memory throughout.
  if (!skip.has('bulk')) {
    const started = Date.now();
    const bulkIds: string[] = [];
    for (let j = 0; j < JOBS; j++) {
      const job = await enrollments.add('write-program-enrollments', writePayload(programUuid, `bulk${j}`, RECORDS));
      bulkIds.push(job.id!);
    }
    say(`bulk: ${JOBS} × ${RECORDS} records queued in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    let peak = 0;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rssMiB(service.pid).rss);
      } catch {}
    }, 250);
    const waits: number[] = [];
    const until = Date.now() + WINDOW_S * 1000;
    for (let n = 0; Date.now() < until || (args.full && n < 3); n++) {
      const active = await enrollments.getActiveCount();
      const small = await enrollments.add('write-program-enrollments', writePayload(programUuid, `small${n}`, 10));
      const done = await finished(enrollments, small.id!, 120_000);
      waits.push(done.processedOn! - done.timestamp);
      say(
        `bulk: 10-record write ${n + 1} waited ${waits.at(-1)} ms (${active} jobs active when added); ` +
          `service RSS now ${rssMiB(service.pid).rss.toFixed(0)} MiB, peak so far ${peak.toFixed(0)} MiB; load ${load()}`,
      );
      if (args.full && n >= 2) break;
      await sleep(15_000);
    }
    if (args.full) {
      for (const id of bulkIds) await finished(enrollments, id, 3 * 3600_000);
    }
    clearInterval(sampler);
    const counts = await enrollments.getJobCounts('completed', 'active', 'waiting', 'delayed', 'failed');
    const hwm = rssMiB(service.pid).hwm;
    say(
      `bulk: over ${((Date.now() - started) / 1000).toFixed(0)} s: service peak RSS ${Math.max(peak, hwm).toFixed(0)} MiB ` +
        `(VmHWM ${hwm.toFixed(0)}), small-job waits ${waits.join(', ')} ms (max ${Math.max(...waits)}); ` +
        `jobs ${JSON.stringify(counts)}`,
    );
    // Redis memory held by the bulk jobs that finished in the window.
    let held = 0;
    let finishedBulk = 0;
    for (const id of bulkIds) {
      if ((await enrollments.getJobState(id)) !== 'completed') continue;
      finishedBulk++;
      held += Number((await redis.call('MEMORY', 'USAGE', `${prefix}:enrollments:${id}`, 'SAMPLES', '0')) ?? 0);
    }
    say(`bulk: ${finishedBulk} finished bulk jobs hold ${(held / MiB).toFixed(2)} MiB in their job hashes`);
  }
  say(`load average at end: ${load()}`);
  await service.stop();
}

process.on('SIGINT', () => {
  void cleanUp().then(() => process.exit(130));
});
main()
  .then(cleanUp, async (err) => {
    console.error(err);
    process.exitCode = 1;
    await cleanUp();
  })
  .then(() => process.exit());
