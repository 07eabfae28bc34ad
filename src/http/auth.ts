import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Compares secrets in constant time (hashing first makes the lengths equal). */
export function secretEquals(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** The bearer-token guard of /api; with no tokens configured every request is refused. */
export function bearerGuard(tokens: readonly string[]) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    const token = match?.[1]?.trim();
    if (!token || !tokens.some((t) => secretEquals(t, token))) {
      return reply.code(401).send({ error: 'a valid bearer token is required' });
    }
  };
}
