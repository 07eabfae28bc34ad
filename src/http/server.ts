import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { ApiAuthenticator } from '../use-cases/api-tokens.js';
import { accessGuard } from './access-guard.js';
import { registerAccessLog } from './access-log.js';
import { registerAdmin } from './admin.js';
import { registerApi } from './api.js';
import type { HttpDeps } from './deps.js';
import { collectRoutes, registerOpenApi } from './openapi.js';

export async function buildHttpServer(deps: HttpDeps): Promise<FastifyInstance> {
  const { config, metrics } = deps;
  const app = Fastify({
    logger: false,
    trustProxy: true,
    bodyLimit: 6 * 1024 * 1024,
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

  app.setErrorHandler((err: Error & { statusCode?: number }, _request, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
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

  await registerAdmin(app, deps.queues, { user: config.ADMIN_USER, password: config.ADMIN_PASSWORD });

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
