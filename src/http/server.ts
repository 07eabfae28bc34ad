import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { ApiAuthenticator } from '../use-cases/api-tokens.js';
import { accessGuard } from './access-guard.js';
import { registerAccessLog } from './access-log.js';
import { registerAdmin } from './admin.js';
import { registerApi } from './api.js';
import type { HttpDeps } from './deps.js';
import { collectRoutes, registerOpenApi } from './openapi.js';

/** The largest request body outside the uploads. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** How much of a refused body is read and dropped before the connection is closed instead. */
const MAX_DRAINED_BYTES = 64 * 1024 * 1024;

function drainBody(raw: IncomingMessage): Promise<void> {
  if (raw.complete || raw.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let drained = 0;
    const done = () => {
      raw.off('data', onData);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > MAX_DRAINED_BYTES) done();
    };
    raw.on('data', onData);
    raw.once('end', done);
    raw.once('error', done);
    raw.once('close', done);
    raw.resume();
  });
}

export async function buildHttpServer(deps: HttpDeps): Promise<FastifyInstance> {
  const { config, metrics } = deps;
  const app = Fastify({
    logger: false,
    trustProxy: true,
    // docs/contract.md "Bad requests": 1 MiB for any body but an upload's (the multipart parser
    // of the upload routes enforces their 5 MiB).
    bodyLimit: MAX_BODY_BYTES,
    // Path parameters carry student keys (up to 255 characters) and course keys, percent-encoded:
    // up to 12 characters each. The router's default of 100 would answer 414 to legitimate keys.
    // Open edX clients put a trailing slash on these URLs; accept both spellings.
    routerOptions: { maxParamLength: 4096, ignoreTrailingSlash: true },
    // A malformed URL (a bad percent escape, say) is refused in the API's own error format.
    frameworkErrors: (err, _request, reply: FastifyReply) => {
      void reply.code(400).send({ error: err.message });
    },
  });

  const routes = collectRoutes(app);
  registerAccessLog(app, deps.log);

  app.setErrorHandler(async (err: Error & { statusCode?: number }, request, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    // Refused before its body was read (over the limit, say): read the rest, so that the client,
    // still sending, gets the answer instead of a reset connection.
    if (status === 413) {
      await drainBody(request.raw);
      void reply.header('connection', 'close');
    }
    if (status >= 500) deps.log.error({ err: err.message }, 'http error');
    return reply.code(status).send({ error: status >= 500 ? 'internal error' : err.message });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not found' }));

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const failing = await deps.readiness();
    return reply.code(failing.length ? 503 : 200).send({ status: failing.length ? 'unavailable' : 'ready', failing });
  });
  app.get('/metrics', async (_request, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(await metrics.render()),
  );

  registerOpenApi(app, routes);

  await registerAdmin(
    app,
    deps.queues,
    { user: config.ADMIN_USER, password: config.ADMIN_PASSWORD },
    { readOnly: config.DASHBOARD_READ_ONLY === 'on' },
  );

  await app.register(
    async (api) => {
      const enrollments = deps.queues.find((q) => q.name === 'enrollments');
      if (!enrollments) throw new Error('the enrollments queue is required for the API');
      const authenticator = new ApiAuthenticator(config.API_TOKENS, deps.database.sql, deps.log);
      api.decorateRequest('apiCaller', null);
      api.addHook('onRequest', accessGuard({ authenticator, sql: deps.database.sql, enrollments }));
      await registerApi(api, deps);
      // Unknown /api paths still pass the guard first: no route probing without a token.
      api.all('/*', { config: { access: { scope: 'any' } } }, async (_request, reply) =>
        reply.code(404).send({ error: 'not found' }),
      );
    },
    { prefix: '/api' },
  );
  return app;
}
