import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { secretEquals } from './auth.js';

export const ADMIN_BASE_PATH = '/admin/queues';

/**
 * Bull Board over both queues, behind HTTP Basic credentials. Without ADMIN_USER/ADMIN_PASSWORD
 * the dashboard refuses everyone: it can retry, remove and empty jobs, which is Redis access.
 */
export async function registerAdmin(
  app: FastifyInstance,
  queues: Queue[],
  credentials: { user?: string | undefined; password?: string | undefined },
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
    createBullBoard({ queues: queues.map((q) => new BullMQAdapter(q)), serverAdapter });
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
