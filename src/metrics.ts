import type { Queue } from 'bullmq';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The Prometheus metrics served on /metrics (names listed in the README). Queue depths are read
 * from BullMQ at scrape time, so every process reports the shared queues.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'program_enrollments_' });
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
  const queueJobs = new Gauge({
    name: 'program_enrollments_queue_jobs',
    help: 'Jobs in each queue by state (shared by every process).',
    labelNames: ['queue', 'state'] as const,
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
  let queues: Queue[] = [];
  let readOutbox: (() => Promise<{ unpublished: number; oldestSeconds: number }>) | undefined;
  return {
    registry,
    jobs,
    jobDuration,
    writeResults,
    lockWaits,
    eventsPublished,
    watchQueues(q: Queue[]) {
      queues = q;
    },
    /** Reads the outbox backlog at scrape time (with EVENT_BUS=on). */
    watchOutbox(read: () => Promise<{ unpublished: number; oldestSeconds: number }>) {
      readOutbox = read;
    },
    /** The metrics text; without Redis, the queue depths are left out and the rest still served. */
    async render(): Promise<string> {
      queueJobs.reset();
      try {
        for (const queue of queues) {
          const counts = await queue.getJobCounts(
            'waiting',
            'active',
            'delayed',
            'completed',
            'failed',
            'prioritized',
            'waiting-children',
          );
          for (const [state, n] of Object.entries(counts)) queueJobs.set({ queue: queue.name, state }, n);
        }
      } catch {
        queueJobs.reset();
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

export type Metrics = ReturnType<typeof createMetrics>;
