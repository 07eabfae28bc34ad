import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

/**
 * `GET /openapi.json` (docs/contract.md "HTTP"): an OpenAPI 3.1 document built from the routes
 * the server has registered (collected as they are added) and the zod schemas of their answers
 * below, one entry per route of the contract's table. A route with no entry here is still listed,
 * without schemas, and the OpenAPI test fails on it; the only routes left out are automatic HEAD
 * routes, the /api catch-all and Bull Board's own pages and API under /admin/queues/.
 */

const error = z.object({ error: z.string() });
const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ next: z.url().nullable(), previous: z.url().nullable(), results: z.array(item) });
const uuidParam = z.string().describe('a program uuid (8-4-4-4-12 hex, any case)');

const programSummary = z.object({
  program_uuid: z.string(),
  program_key: z.string().nullable(),
  organization_key: z.string(),
  permissions: z.array(z.enum(['read', 'write'])),
});
const program = z.object({
  program_uuid: z.string(),
  program_key: z.string().nullable(),
  organization_key: z.string(),
  curricula: z.array(
    z.object({ curriculum_uuid: z.string(), is_active: z.boolean(), course_keys: z.array(z.string()) }),
  ),
  courses: z.array(
    z.object({ course_key: z.string(), external_course_key: z.string().nullable(), modes: z.array(z.string()) }),
  ),
});
const programEnrollment = z.object({
  student_key: z.string(),
  status: z.string(),
  account_exists: z.boolean(),
  curriculum_uuid: z.string().nullable(),
  username: z.string(),
  email: z.string(),
});
const programCourseEnrollment = z.object({
  student_key: z.string(),
  status: z.string(),
  account_exists: z.boolean(),
  curriculum_uuid: z.string().nullable(),
  course_staff: z.boolean(),
});
const historyRow = z.object({
  at: z.iso.datetime(),
  entity: z.enum(['program_enrollment', 'program_course_enrollment']),
  action: z.enum(['created', 'changed', 'deleted']),
  changes: z.record(z.string(), z.tuple([z.unknown(), z.unknown()])),
  job_id: z.string().nullable(),
  queue: z.enum(['enrollments', 'accounts']).nullable(),
  requested_by: z.string().nullable(),
  course_key: z.string().nullable(),
});
const courseEnrollment = z.object({
  course_key: z.string(),
  mode: z.string(),
  is_active: z.boolean(),
  course_staff: z.boolean(),
});
const accepted = z.object({ job_id: z.string(), job_url: z.url() });
const jobStatus = z.object({
  job_id: z.string(),
  name: z.string(),
  created: z.iso.datetime(),
  state: z.enum(['Pending', 'In Progress', 'Retrying', 'Succeeded', 'Failed', 'Canceled']),
  result: z.url().nullable(),
  text: z.string().nullable(),
  error: z.string().nullable(),
  requested_by: z.string().nullable().describe('who added the job: api:<token name> for an upload'),
});
const upload = z.object({ file: z.string().describe('the CSV file').meta({ contentMediaType: 'text/csv' }) });

type Content = Record<string, z.ZodType>;
interface Operation {
  summary: string;
  auth?: 'bearer' | 'basic';
  params?: Record<string, z.ZodType>;
  query?: Record<string, z.ZodType>;
  body?: Content;
  responses: Record<number, { description: string; content?: Content }>;
}

const json = (schema: z.ZodType): Content => ({ 'application/json': schema });
const refusals = (...codes: number[]) =>
  Object.fromEntries(
    codes.map((code) => [code, { description: REFUSALS[code] ?? 'refused', content: json(error) }]),
  ) as Operation['responses'];
const REFUSALS: Record<number, string> = {
  400: 'a malformed request, named in `error`',
  401: 'no valid credentials',
  403: "outside the token's organizations or permission",
  404: 'nothing by that name',
  413: 'the body is over its limit',
};
const pagination = {
  page_size: z.string().describe('positive integer, default 100; above 1,000 is taken as 1,000'),
  cursor: z.string().describe('opaque, from `next` or `previous`'),
};

/** Keyed `METHOD url` as Fastify spells the route. */
const OPERATIONS: Record<string, Operation> = {
  'GET /healthz': {
    summary: 'The process runs',
    responses: { 200: { description: 'ok', content: json(z.object({ status: z.literal('ok') })) } },
  },
  'GET /readyz': {
    summary: 'Redis, Postgres and the workers answer',
    responses: {
      200: {
        description: 'ready',
        content: json(z.object({ status: z.literal('ready'), failing: z.array(z.string()).max(0) })),
      },
      503: {
        description: 'a part is failing',
        content: json(z.object({ status: z.literal('unavailable'), failing: z.array(z.string()) })),
      },
    },
  },
  'GET /metrics': {
    summary: 'Prometheus text exposition (names in the README)',
    responses: { 200: { description: 'the metrics', content: { 'text/plain': z.string() } } },
  },
  'GET /openapi.json': {
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1', content: json(z.object({ openapi: z.string() }).loose()) } },
  },
  'GET /admin/queues': {
    summary: 'Bull Board over both queues',
    auth: 'basic',
    responses: { 200: { description: 'the dashboard page', content: { 'text/html': z.string() } }, ...refusals(401) },
  },
  'GET /api/v1/programs': {
    summary: 'The programs the token may read, sorted by program_uuid',
    auth: 'bearer',
    query: { org: z.string().describe('only this organization') },
    responses: {
      200: { description: 'the programs', content: json(z.array(programSummary)) },
      ...refusals(400, 401, 403),
    },
  },
  'GET /api/v1/programs/:program_uuid': {
    summary: 'A program as last upserted',
    auth: 'bearer',
    params: { program_uuid: uuidParam },
    responses: { 200: { description: 'the program', content: json(program) }, ...refusals(400, 401, 403, 404) },
  },
  'GET /api/v1/programs/:program_uuid/enrollments': {
    summary: 'Program enrollments in creation order',
    auth: 'bearer',
    params: { program_uuid: uuidParam },
    query: pagination,
    responses: {
      200: { description: 'a page', content: json(pageOf(programEnrollment)) },
      ...refusals(400, 401, 403, 404),
    },
  },
  'GET /api/v1/programs/:program_uuid/courses/:course_key/enrollments': {
    summary: "A course's program course enrollments in creation order",
    auth: 'bearer',
    params: {
      program_uuid: uuidParam,
      course_key: z.string().describe("the course's own or external key, percent-encoded"),
    },
    query: pagination,
    responses: {
      200: { description: 'a page', content: json(pageOf(programCourseEnrollment)) },
      ...refusals(400, 401, 404),
    },
  },
  'GET /api/v1/programs/:program_uuid/enrollments/:student_key/history': {
    summary: "History of a learner's PE and its PCEs, oldest first",
    auth: 'bearer',
    params: { program_uuid: uuidParam, student_key: z.string().describe('matched case-insensitively') },
    responses: {
      200: { description: 'the rows', content: json(z.array(historyRow)) },
      ...refusals(400, 401, 403, 404),
    },
  },
  'GET /api/v1/users/:user_id/course_enrollments': {
    summary: "An account's course enrollments, modes and staff roles",
    auth: 'bearer',
    params: { user_id: z.string().describe('the LMS user id') },
    responses: {
      200: { description: 'sorted by course_key', content: json(z.array(courseEnrollment)) },
      ...refusals(400, 401, 404),
    },
  },
  'POST /api/v1/programs/:program_uuid/enrollments/upload': {
    summary: 'CSV `student_key,status`, applied as create_or_update',
    auth: 'bearer',
    params: { program_uuid: uuidParam },
    body: { 'multipart/form-data': upload },
    responses: { 202: { description: 'the job', content: json(accepted) }, ...refusals(400, 401, 403, 404, 413) },
  },
  'POST /api/v1/programs/:program_uuid/course_enrollments/upload': {
    summary: 'CSV `student_key,course_id,status[,course_staff]`, several courses in one job',
    auth: 'bearer',
    params: { program_uuid: uuidParam },
    body: { 'multipart/form-data': upload },
    responses: { 202: { description: 'the job', content: json(accepted) }, ...refusals(400, 401, 403, 404, 413) },
  },
  'GET /api/v1/jobs/:job_id': {
    summary: "A job's state (enrollments queue)",
    auth: 'bearer',
    params: { job_id: z.string() },
    responses: { 200: { description: 'the job', content: json(jobStatus) }, ...refusals(400, 401, 403, 404) },
  },
  'GET /api/v1/jobs/:job_id/result.csv': {
    summary: 'The per-learner results of a succeeded write job, CRLF lines',
    auth: 'bearer',
    params: { job_id: z.string() },
    responses: {
      200: { description: 'the CSV', content: { 'text/csv': z.string() } },
      ...refusals(400, 401, 403, 404),
    },
  },
};

export interface RegisteredRoute {
  method: string;
  url: string;
}

/** Left out of the document: not routes of the contract's table. */
export function isUndocumentedRoute(route: RegisteredRoute): boolean {
  return route.method === 'HEAD' || route.url === '/api/*' || route.url.startsWith('/admin/queues/');
}

/** Records the routes registered after this call, in order; call it before any route is added. */
export function collectRoutes(app: FastifyInstance): RegisteredRoute[] {
  const routes: RegisteredRoute[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });
  return routes;
}

const schemaOf = (schema: z.ZodType) => {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'output' });
  return rest;
};
const contentOf = (content: Content) =>
  Object.fromEntries(Object.entries(content).map(([type, schema]) => [type, { schema: schemaOf(schema) }]));

export function buildOpenApi(routes: readonly RegisteredRoute[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    if (isUndocumentedRoute(route)) continue;
    const op = OPERATIONS[`${route.method} ${route.url}`];
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const parameters = [
      ...Object.entries(op?.params ?? {}).map(([name, schema]) => ({
        name,
        in: 'path',
        required: true,
        schema: schemaOf(schema),
      })),
      ...Object.entries(op?.query ?? {}).map(([name, schema]) => ({
        name,
        in: 'query',
        required: false,
        schema: schemaOf(schema),
      })),
    ];
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = {
      summary: op?.summary ?? 'undocumented',
      ...(op?.auth ? { security: [{ [op.auth === 'bearer' ? 'bearerToken' : 'dashboardCredentials']: [] }] } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(op?.body ? { requestBody: { required: true, content: contentOf(op.body) } } : {}),
      responses: Object.fromEntries(
        Object.entries(op?.responses ?? { default: { description: 'undocumented' } }).map(([status, r]) => [
          status,
          { description: r.description, ...(r.content ? { content: contentOf(r.content) } : {}) },
        ]),
      ),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'program-enrollments',
      version,
      description: 'Reads, uploads and job status of program enrollments (docs/contract.md "HTTP").',
    },
    paths,
    components: {
      securitySchemes: {
        bearerToken: { type: 'http', scheme: 'bearer' },
        dashboardCredentials: { type: 'http', scheme: 'basic' },
      },
    },
  };
}

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Serves the document, built once on first request from every route registered by then. */
export function registerOpenApi(app: FastifyInstance, routes: readonly RegisteredRoute[]): void {
  let document: Record<string, unknown> | undefined;
  app.get('/openapi.json', async () => {
    document ??= buildOpenApi(routes, version);
    return document;
  });
}
