import { Job } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { findSubmittedJob } from '../../db/job-ledger.js';
import type { HttpDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { type JobSnapshot, type JobStatusState, jobStatus, jobStatusState, resultCsv } from '../job-status.js';
import { requestOrigin } from '../urls.js';

/**
 * The job with that id, from the first queue (in the order given: enrollments first) that knows it.
 * BullMQ numbers each queue's jobs on its own, so an automatic id may exist in both queues; the
 * enrollments queue, where the Registrar's jobs go, wins.
 *
 * The state is read before the job: the other way round, a job that completes between the two
 * reads shows as Succeeded without its result, and a polling client stops at that answer.
 *
 * A job the service submitted itself (an upload) that BullMQ no longer knows is answered from
 * Postgres: Succeeded with its stored result, or Canceled when it was removed before it finished.
 */
async function findJob(deps: HttpDeps, jobId: string): Promise<{ job: JobSnapshot; state: JobStatusState } | null> {
  for (const queue of deps.queues) {
    const bullState = await queue.getJobState(jobId);
    if (bullState === 'unknown') continue;
    const job = await Job.fromId(queue, jobId);
    // Removed between the two reads: as unknown as if it had never been there.
    if (!job) continue;
    const state = jobStatusState(bullState, job);
    if (state !== null) return { job, state };
  }
  const submitted = await findSubmittedJob(deps.database.sql, jobId);
  if (!submitted) return null;
  const job: JobSnapshot = {
    id: jobId,
    name: submitted.name,
    timestamp: submitted.createdAt.getTime(),
    returnvalue: submitted.result ?? null,
    failedReason: '',
    data: { requested_by: submitted.requestedBy },
  };
  return { job, state: submitted.result ? 'Succeeded' : 'Canceled' };
}

export async function registerJobRoutes(api: FastifyInstance, deps: HttpDeps): Promise<void> {
  const job = { config: { access: { scope: 'job' } as const } };

  api.get<{ Params: { job_id: string } }>('/v1/jobs/:job_id', job, async (request) => {
    const found = await findJob(deps, request.params.job_id);
    if (!found) throw notFound(`unknown job ${request.params.job_id}`);
    const resultUrl = `${requestOrigin(request)}/api/v1/jobs/${encodeURIComponent(request.params.job_id)}/result.csv`;
    return jobStatus(found.job, found.state, resultUrl);
  });

  api.get<{ Params: { job_id: string } }>('/v1/jobs/:job_id/result.csv', job, async (request, reply) => {
    const found = await findJob(deps, request.params.job_id);
    if (!found) throw notFound(`unknown job ${request.params.job_id}`);
    if (found.state !== 'Succeeded') throw notFound(`job ${request.params.job_id} has not succeeded`);
    const csv = resultCsv(found.job.returnvalue);
    if (csv === null) throw notFound(`job ${request.params.job_id} has no result CSV`);
    return reply.type('text/csv; charset=utf-8').send(csv);
  });
}
