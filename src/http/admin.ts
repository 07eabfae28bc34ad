import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Job, Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { secretEquals } from './auth.js';
import { redactForDashboard } from './dashboard-redaction.js';

/** Bull Board's view of a queue, with every job redacted as dashboard-redaction.ts says. */
class RedactingAdapter extends BullMQAdapter {
  override async getJob(id: string): Promise<Job | undefined> {
    const job = await super.getJob(id);
    return job ? redactForDashboard(job) : job;
  }

  override async getJobs(
    jobStatuses: Parameters<BullMQAdapter['getJobs']>[0],
    start?: number,
    end?: number,
  ): Promise<Job[]> {
    return (await super.getJobs(jobStatuses, start, end)).map((job) => redactForDashboard(job));
  }
}

export const ADMIN_BASE_PATH = '/admin/queues';

/**
 * Bull Board over both queues, behind HTTP Basic credentials. Without ADMIN_USER/ADMIN_PASSWORD
 * the dashboard refuses everyone: it shows job data, and unless read-only it can retry, remove and
 * empty jobs, which is Redis access.
 */
export async function registerAdmin(
  app: FastifyInstance,
  queues: Queue[],
  credentials: { user?: string | undefined; password?: string | undefined },
  options: { readOnly: boolean },
): Promise<void> {
  await app.register(async (scope) => {
    // Refused here, in the API's error format, before Bull Board's own error handling sees it.
    scope.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (!validBasicCredentials(request.headers.authorization, credentials)) {
        return reply
          .code(401)
          .header('www-authenticate', 'Basic realm="program-enrollments", charset="UTF-8"')
          .send({ error: 'valid dashboard credentials are required' });
      }
    });
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(ADMIN_BASE_PATH);
    // Read-only (DASHBOARD_READ_ONLY, on by default): no retry, clean, delete, add or pause, in
    // the page and in its API (Bull Board refuses those with 405).
    createBullBoard({
      queues: queues.map((q) => new RedactingAdapter(q, { readOnlyMode: options.readOnly })),
      serverAdapter,
    });
    await scope.register(serverAdapter.registerPlugin(), { prefix: ADMIN_BASE_PATH });
  });
}

function validBasicCredentials(
  header: string | undefined,
  credentials: { user?: string | undefined; password?: string | undefined },
): boolean {
  if (credentials.user === undefined || credentials.password === undefined) return false;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) return false;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  // Both compared, whatever the first gives: the time taken says nothing about which was wrong.
  const userOk = secretEquals(decoded.slice(0, colon), credentials.user);
  const passwordOk = secretEquals(decoded.slice(colon + 1), credentials.password);
  return userOk && passwordOk;
}
