import type { TokenPermission } from './api-tokens.js';

/**
 * Who may do what on the HTTP API (docs/contract.md "Who may do what"), as pure decisions: the HTTP guard
 * gathers the facts (the caller, the organization the request concerns) and asks here.
 */

/** The holder of a valid bearer token. */
export type ApiCaller =
  | { kind: 'operator'; name: string }
  | { kind: 'partner'; name: string; organizations: readonly string[]; permission: TokenPermission };

/** What a route needs, declared by the route. */
export type RouteAccess =
  /** Any valid token: the route itself narrows what it shows to the caller (the program list). */
  | { scope: 'any' }
  /** Operator tokens only: the route spans organizations (an account's course enrollments). */
  | { scope: 'operator' }
  /** The program named by the path, with this permission on its organization. */
  | { scope: 'program'; permission: TokenPermission }
  /** A job of the `enrollments` queue, readable by tokens that may read its program. */
  | { scope: 'job' };

/**
 * The organization a program or job request concerns: the program's (or the job's program's)
 * organization key, or null when there is none to see (an unknown program; an unknown job, or a
 * job about no program, such as `retire-learner`).
 */
export type AccessTarget = { organizationKey: string | null };

export type AccessDecision = { allow: true } | { allow: false; status: 403 | 404; error: string };

const ALLOW: AccessDecision = { allow: true };

/** Whether deciding needs the request's target looked up: operators may do everything. */
export function needsTarget(access: RouteAccess, caller: ApiCaller): boolean {
  return caller.kind === 'partner' && (access.scope === 'program' || access.scope === 'job');
}

/** The permissions a caller holds on an organization's programs, `[]` when none. */
export function permissionsOn(caller: ApiCaller, organizationKey: string): TokenPermission[] {
  if (caller.kind === 'operator') return ['read', 'write'];
  if (!caller.organizations.includes(organizationKey)) return [];
  return caller.permission === 'write' ? ['read', 'write'] : ['read'];
}

/**
 * The decision for one request. `target` is what the guard found for the path (see needsTarget);
 * `what` names it in messages (`program <uuid>`, `job <id>`).
 *  - unknown program: 404; program of an organization the token does not cover: 403;
 *  - write route with a read token: 403;
 *  - a job the token may not read is answered as an unknown job, 404: job ids are not to be probed
 *    across organizations;
 *  - operator-only route with a partner token: 403.
 */
export function decideAccess(
  access: RouteAccess,
  caller: ApiCaller,
  target: AccessTarget | null,
  what: string,
): AccessDecision {
  if (caller.kind === 'operator' || access.scope === 'any') return ALLOW;
  if (access.scope === 'operator') {
    return { allow: false, status: 403, error: 'this route spans organizations: it needs an operator token' };
  }
  const organizationKey = target?.organizationKey ?? null;
  const held = organizationKey === null ? [] : permissionsOn(caller, organizationKey);
  if (access.scope === 'job') {
    return held.includes('read') ? ALLOW : { allow: false, status: 404, error: `unknown ${what}` };
  }
  if (organizationKey === null) return { allow: false, status: 404, error: `unknown ${what}` };
  if (held.length === 0) {
    return { allow: false, status: 403, error: `token ${caller.name} does not cover the organization of ${what}` };
  }
  if (!held.includes(access.permission)) {
    return {
      allow: false,
      status: 403,
      error: `token ${caller.name} has ${caller.permission} permission; this needs ${access.permission}`,
    };
  }
  return ALLOW;
}
