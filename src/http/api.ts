import type { FastifyInstance } from 'fastify';
import type { HttpDeps } from './server.js';

/** The read API of CONTRACT.md "HTTP", mounted under /api behind the bearer-token guard. */
export async function registerApi(_api: FastifyInstance, _deps: HttpDeps): Promise<void> {}
