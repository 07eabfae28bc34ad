import type { FastifyInstance } from 'fastify';
import type { HttpDeps } from './deps.js';
import { registerCatalogRoutes } from './routes/catalog.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerProgramRoutes } from './routes/programs.js';
import { registerUploadRoutes } from './routes/uploads.js';
import { registerUserRoutes } from './routes/users.js';

/** The API of docs/contract.md "HTTP", mounted under /api behind the bearer-token guard. */
export async function registerApi(api: FastifyInstance, deps: HttpDeps): Promise<void> {
  await registerCatalogRoutes(api, deps);
  await registerProgramRoutes(api, deps);
  await registerUploadRoutes(api, deps);
  await registerUserRoutes(api, deps);
  await registerJobRoutes(api, deps);
}
