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
  const redisReconnects = new Counter({
    name: 'program_enrollments_redis_reconnects_total',
    help: "Times one of this process's Redis connections came back after it was lost.",
    registers: [registry],
  });
  const queueJobs = new Gauge({
    name: 'program_enrollments_queue_jobs',
    help: 'Jobs in each queue by state (shared by every process).',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
  });
  let queues: Queue[] = [];
  return {
    registry,
    jobs,
    jobDuration,
    writeResults,
    lockWaits,
    redisReconnects,
    watchQueues(q: Queue[]) {
      queues = q;
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
      return registry.metrics();
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
