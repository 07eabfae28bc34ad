import { Job, type Queue } from 'bullmq';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Queryable } from '../db/client.js';
import { submittedJobProgram } from '../db/job-ledger.js';
import { programOrganization } from '../db/program-catalog.js';
import {
  type AccessTarget,
  type ApiCaller,
  decideAccess,
  needsTarget,
  type RouteAccess,
} from '../domain/api-access.js';
import type { ApiAuthenticator } from '../use-cases/api-tokens.js';
import { HttpError } from './errors.js';
import { programUuidParam } from './routes/programs.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route needs of the caller's token (docs/contract.md "Who may do what"); absent: operators only. */
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /** The holder of the request's token, set by the guard before any /api handler runs. */
    apiCaller: ApiCaller | null;
  }
}

/** The caller of an /api request: always set there, since the guard refuses requests without one. */
export function apiCaller(request: FastifyRequest): ApiCaller {
  if (!request.apiCaller) throw new Error('apiCaller read outside the /api guard');
  return request.apiCaller;
}

const OPERATORS_ONLY: RouteAccess = { scope: 'operator' };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A job id Postgres and Redis can be asked about: anything else names no job. */
const askableJobId = (id: string) => id.length > 0 && id.length <= 255 && !id.includes('\u0000');

/**
 * The one place that decides who may do what on /api, as an onRequest hook, before any body is
 * read or handler runs: 401 without a valid token, then the route's declared `access` and the
 * organization the path concerns, decided by domain/api-access.ts. Partner tokens need that
 * organization looked up; operator tokens never wait for it.
 */
export function accessGuard(deps: { authenticator: ApiAuthenticator; sql: Queryable; enrollments: Queue }) {
  const { authenticator, sql, enrollments } = deps;

  const programTarget = async (raw: string): Promise<AccessTarget> => ({
    organizationKey: await programOrganization(sql, programUuidParam(raw)),
  });

  /** A job's program: the upload's recorded one, else the program_uuid of the BullMQ job's data. */
  const jobTarget = async (jobId: string): Promise<AccessTarget> => {
    if (!askableJobId(jobId)) return { organizationKey: null };
    let programUuid = await submittedJobProgram(sql, jobId);
    if (programUuid === null) {
      const job = await Job.fromId(enrollments, jobId);
      const sent: unknown = (job?.data as { program_uuid?: unknown } | undefined)?.program_uuid;
      const uuid = typeof sent === 'string' ? sent.trim().toLowerCase() : '';
      programUuid = UUID.test(uuid) ? uuid : null;
    }
    return { organizationKey: programUuid === null ? null : await programOrganization(sql, programUuid) };
  };

  return async (request: FastifyRequest, reply: FastifyReply) => {
    const match = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '');
    const token = match?.[1]?.trim();
    const caller = token ? await authenticator.authenticate(token) : null;
    if (!caller) {
      return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'a valid bearer token is required' });
    }
    request.apiCaller = caller;

    const access = request.routeOptions.config.access ?? OPERATORS_ONLY;
    const params = (request.params ?? {}) as { program_uuid?: string; job_id?: string };
    let target: AccessTarget | null = null;
    let what = '';
    if (needsTarget(access, caller)) {
      if (access.scope === 'job') {
        what = `job ${params.job_id ?? ''}`;
        target = await jobTarget(params.job_id ?? '');
      } else {
        what = `program ${params.program_uuid ?? ''}`;
        target = await programTarget(params.program_uuid ?? '');
      }
    }
    const decision = decideAccess(access, caller, target, what);
    if (!decision.allow) throw new HttpError(decision.status, decision.error);
  };
}
