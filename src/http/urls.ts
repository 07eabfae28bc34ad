import type { FastifyRequest } from 'fastify';

/**
 * The scheme and authority that callers used, for the absolute URLs in answers (docs/contract.md "HTTP"):
 * the `Host` header as sent, and the scheme of `X-Forwarded-Proto` when a proxy set one, else http.
 * Fastify's own `request.host`/`request.protocol` are not used: with trustProxy they also follow
 * X-Forwarded-Host, which the contract does not ask for.
 */
export function requestOrigin(request: FastifyRequest): string {
  const forwarded = headerValue(request.headers['x-forwarded-proto']);
  // A chain of proxies appends its own schemes; the first one is what the client spoke.
  const first = forwarded?.split(',')[0]?.trim().toLowerCase();
  const scheme = first && /^[a-z][a-z0-9+.-]*$/.test(first) ? first : 'http';
  const host = headerValue(request.headers.host) ?? request.hostname;
  return `${scheme}://${host}`;
}

/** The request's path exactly as sent (percent-encoding kept), without its query string. */
export function requestPath(request: FastifyRequest): string {
  const query = request.url.indexOf('?');
  return query === -1 ? request.url : request.url.slice(0, query);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  const single = Array.isArray(value) ? value[0] : value;
  return single === undefined || single === '' ? undefined : single;
}
