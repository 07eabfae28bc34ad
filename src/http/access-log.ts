import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from '../log.js';

/** Probes and the dashboard's static files: frequent, and nobody's action. */
const QUIET = /^\/(healthz|readyz|metrics)$|^\/admin\/queues\/static\//;

/**
 * One `request` log line per HTTP request (README "Operating it"): method, the route's pattern
 * (never the URL itself, which carries student keys), status, time in ms, and the name of the API
 * token that the access guard recognized (access-guard.ts). Neither a token nor any credential is logged.
 */
export function registerAccessLog(app: FastifyInstance, log: Logger): void {
  const access = log.child({ component: 'http' });
  app.addHook('onResponse', async (request: FastifyRequest, reply) => {
    const route = request.routeOptions.url ?? null;
    if (route !== null && QUIET.test(route)) return;
    access.info(
      {
        method: request.method,
        route,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ...(request.apiCaller ? { token: request.apiCaller.name } : {}),
      },
      'request',
    );
  });
}
