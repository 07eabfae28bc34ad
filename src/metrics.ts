import type { Job, Queue } from 'bullmq';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** What the scrape-time gauges read; given once the process has its queues, Redis and Postgres. */
export interface MetricsSources {
  queues: Queue[];
  /** Whether this process holds the lease to export the shared queue gauges (src/lock/exporter-lease.ts). */
  holdsExporterLease(): Promise<boolean>;
  /** This process's Postgres connections. */
  databaseConnections(): Promise<{ open: number; busy: number }>;
  databasePoolMax: number;
}

/**
 * prom-client's defaults include three gauges named `_total` (active handles, requests, resources),
 * which `promtool check metrics` refuses; each is the sum of the per-type gauge beside it
 * (`…_active_handles{type}`), so they are dropped.
 */
const GAUGES_NAMED_TOTAL = ['active_handles_total', 'active_requests_total', 'active_resources_total'];

/** Queue states read at scrape time; `delayed` leaves out the schedule's next run (see render). */
const STATES = ['waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized', 'waiting-children'] as const;

/**
 * The Prometheus metrics served on /metrics (names listed in the README), valid for
 * `promtool check metrics`. Counters and histograms count this process's work; the queue gauges
 * describe the shared queues and are exported by one process at a time (the exporter lease), so
 * that summing over replicas never counts a job twice.
 */
export function createMetrics() {
  const registry = new Registry();
  const prefix = 'program_enrollments_';
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of GAUGES_NAMED_TOTAL) registry.removeSingleMetric(`${prefix}nodejs_${name}`);

  const jobs = new Counter({
    name: 'program_enrollments_jobs_total',
    help: 'Jobs processed by this process, by queue, job name and outcome (completed, failed, delayed, retried).',
    labelNames: ['queue', 'name', 'outcome'] as const,
    registers: [registry],
  });
  const jobDuration = new Histogram({
    name: 'program_enrollments_job_duration_seconds',
    help: 'Time from a job becoming active to its completion or failure, by queue and job name.',
    labelNames: ['queue', 'name'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  const jobWait = new Histogram({
    name: 'program_enrollments_job_wait_seconds',
    help: 'Time from a job being added (or its requested delay ending) to its first start, by queue and job name.',
    labelNames: ['queue', 'name'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers: [registry],
  });
  const stalls = new Counter({
    name: 'program_enrollments_job_stalls_total',
    help: 'Jobs this process found stalled (their worker stopped renewing the lock) and handed back, by queue.',
    labelNames: ['queue'] as const,
    registers: [registry],
  });
  const redisReconnects = new Counter({
    name: 'program_enrollments_redis_reconnects_total',
    help: "Times one of this process's Redis connections came back after it was lost.",
    registers: [registry],
  });
  const writeResults = new Counter({
    name: 'program_enrollments_write_results_total',
    help: 'Per-learner results of the write jobs, by job name and result.',
    labelNames: ['name', 'result'] as const,
    registers: [registry],
  });
  const lockWaits = new Counter({
    name: 'program_enrollments_lock_waits_total',
    help: 'Times a job found a learner-course lock held by another job and was delayed.',
    registers: [registry],
  });
  const accountEventBatch = new Histogram({
    name: 'program_enrollments_account_event_batch_size',
    help: 'Account events applied together, in the statements of one transaction.',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [registry],
  });
  const redisUp = new Gauge({
    name: 'program_enrollments_redis_up',
    help: 'Whether Redis answered this scrape (1) or not (0).',
    registers: [registry],
  });
  const exporter = new Gauge({
    name: 'program_enrollments_queue_metrics_exporter',
    help: 'Whether this process exports the shared queue gauges (1): one process at a time does.',
    registers: [registry],
  });
  const queueJobs = new Gauge({
    name: 'program_enrollments_queue_jobs',
    help: "Jobs in each queue by state, read at scrape time; delayed leaves out the schedule's next run.",
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
  });
  const queueSchedules = new Gauge({
    name: 'program_enrollments_queue_schedules',
    help: 'Job schedulers of each queue (their next run waits as a delayed job, not counted as work).',
    labelNames: ['queue'] as const,
    registers: [registry],
  });
  const oldestWaiting = new Gauge({
    name: 'program_enrollments_queue_oldest_waiting_seconds',
    help: 'Age of the oldest job waiting to start in each queue (0 when none waits).',
    labelNames: ['queue'] as const,
    registers: [registry],
  });
  const dbConnections = new Gauge({
    name: 'program_enrollments_db_pool_connections',
    help: "This process's Postgres connections by state (busy: running a statement or in a transaction).",
    labelNames: ['state'] as const,
    registers: [registry],
  });
  const dbPoolMax = new Gauge({
    name: 'program_enrollments_db_pool_max',
    help: "The size of this process's Postgres pool.",
    registers: [registry],
  });

  const eventsPublished = new Counter({
    name: 'program_enrollments_events_published_total',
    help: 'Outbound events this process published on the event bus, by event type.',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const outboxBacklog = new Gauge({
    name: 'program_enrollments_outbox_backlog',
    help: 'Outbound events written and not yet published (shared by every process).',
    registers: [registry],
  });
  const outboxOldest = new Gauge({
    name: 'program_enrollments_outbox_oldest_unpublished_seconds',
    help: 'Age of the oldest outbound event not yet published, 0 when none waits.',
    registers: [registry],
  });

  let sources: MetricsSources | undefined;
  let readOutbox: (() => Promise<{ unpublished: number; oldestSeconds: number }>) | undefined;

  async function readQueues(queues: Queue[]): Promise<void> {
    for (const queue of queues) {
      const counts = await queue.getJobCounts(...STATES);
      const schedulers = await queue.getJobSchedulers();
      // A job scheduler keeps its next run in `delayed` all day: that is not work waiting.
      let scheduled = 0;
      for (const s of schedulers) {
        if (s.next !== undefined && (await queue.getJobState(`repeat:${s.key}:${s.next}`)) === 'delayed') scheduled++;
      }
      counts.delayed = Math.max(0, (counts.delayed ?? 0) - scheduled);
      for (const [state, n] of Object.entries(counts)) queueJobs.set({ queue: queue.name, state }, n);
      queueSchedules.set({ queue: queue.name }, schedulers.length);
      oldestWaiting.set({ queue: queue.name }, (await oldestWaitingAge(queue)) / 1000);
    }
  }

  return {
    registry,
    jobs,
    jobDuration,
    jobWait,
    stalls,
    redisReconnects,
    writeResults,
    lockWaits,
    accountEventBatch,
    eventsPublished,
    /** Reads the outbox backlog at scrape time (with EVENT_BUS=on). */
    watchOutbox(read: () => Promise<{ unpublished: number; oldestSeconds: number }>) {
      readOutbox = read;
    },
    watch(s: MetricsSources) {
      sources = s;
      dbPoolMax.set(s.databasePoolMax);
    },
    /** Observes a job's wait on its first start; later starts (retries, lock waits) are not waits for a worker. */
    jobStarted(queue: string, name: string, job: Job) {
      if (job.attemptsStarted > 1) return;
      const ready = job.timestamp + (job.opts.delay ?? 0);
      jobWait.observe({ queue, name }, Math.max(0, (job.processedOn ?? Date.now()) - ready) / 1000);
    },
    /** The metrics text; without Redis or Postgres, their gauges are left out and the rest still served. */
    async render(): Promise<string> {
      queueJobs.reset();
      queueSchedules.reset();
      oldestWaiting.reset();
      dbConnections.reset();
      if (sources) {
        try {
          const exporting = await sources.holdsExporterLease();
          redisUp.set(1);
          exporter.set(exporting ? 1 : 0);
          if (exporting) await readQueues(sources.queues);
        } catch {
          redisUp.set(0);
          exporter.set(0);
          queueJobs.reset();
          queueSchedules.reset();
          oldestWaiting.reset();
        }
        try {
          const { open, busy } = await sources.databaseConnections();
          dbConnections.set({ state: 'busy' }, busy);
          dbConnections.set({ state: 'idle' }, open - busy);
        } catch {
          dbConnections.reset();
        }
      }
      if (readOutbox) {
        outboxBacklog.reset();
        outboxOldest.reset();
        try {
          const backlog = await readOutbox();
          outboxBacklog.set(backlog.unpublished);
          outboxOldest.set(backlog.oldestSeconds);
        } catch {
          // Without Postgres the backlog is left out; the rest is still served.
        }
      }
      return registry.metrics();
    },
  };
}

/**
 * Milliseconds since the oldest job that waits to start became ready: the tail of the wait list
 * (BullMQ takes from there) and the first prioritized job, whichever is older.
 */
async function oldestWaitingAge(queue: Queue): Promise<number> {
  const [oldestWaiting] = await queue.getJobs(['wait'], 0, 0, true);
  const [firstPrioritized] = await queue.getJobs(['prioritized'], 0, 0, true);
  const readyAt = [oldestWaiting, firstPrioritized]
    .filter((j): j is Job => j !== undefined)
    .map((j) => j.timestamp + (j.opts.delay ?? 0));
  return readyAt.length ? Math.max(0, Date.now() - Math.min(...readyAt)) : 0;
}

export type Metrics = ReturnType<typeof createMetrics>;
