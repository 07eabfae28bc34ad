import basicAuth from '@fastify/basic-auth';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
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
    await scope.register(basicAuth, {
      authenticate: { realm: 'program-enrollments' },
      async validate(user, password) {
        const ok =
          credentials.user !== undefined &&
          credentials.password !== undefined &&
          secretEquals(user, credentials.user) &&
          secretEquals(password, credentials.password);
        if (!ok) return new Error('valid dashboard credentials are required');
      },
    });
    scope.addHook('onRequest', scope.basicAuth);
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(ADMIN_BASE_PATH);
    createBullBoard({ queues: queues.map((q) => new BullMQAdapter(q)), serverAdapter });
    await scope.register(serverAdapter.registerPlugin(), { prefix: ADMIN_BASE_PATH });
  });
}
