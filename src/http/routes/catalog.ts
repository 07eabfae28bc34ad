import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { listPrograms, programCatalog } from '../../db/program-catalog.js';
import { permissionsOn } from '../../domain/api-access.js';
import { apiCaller } from '../access-guard.js';
import type { HttpDeps } from '../deps.js';
import { badRequest, notFound } from '../errors.js';
import { programUuidParam } from './programs.js';

const programsQuery = z.object({ org: z.string().optional() });

/**
 * The program catalog as upsert-program keeps it (docs/contract.md "HTTP"): the programs a token may read,
 * and one program's curricula and courses, the start of the Registrar console.
 */
export async function registerCatalogRoutes(api: FastifyInstance, { database }: HttpDeps): Promise<void> {
  const { sql } = database;

  // Any valid token: the list holds only the programs of the organizations the token covers.
  api.get('/v1/programs', { config: { access: { scope: 'any' } } }, async (request) => {
    const query = programsQuery.safeParse(request.query);
    if (!query.success) throw badRequest('org must be given at most once');
    const caller = apiCaller(request);
    const organizations = caller.kind === 'operator' ? null : caller.organizations;
    const org = query.data.org;
    const programs = await listPrograms(sql, org === undefined ? organizations : [org]);
    return programs
      .map((p) => ({ program: p, permissions: permissionsOn(caller, p.organizationKey) }))
      .filter(({ permissions }) => permissions.includes('read'))
      .map(({ program, permissions }) => ({
        program_uuid: program.programUuid,
        program_key: program.programKey,
        organization_key: program.organizationKey,
        permissions,
      }));
  });

  api.get<{ Params: { program_uuid: string } }>(
    '/v1/programs/:program_uuid',
    { config: { access: { scope: 'program', permission: 'read' } } },
    async (request) => {
      const catalog = await programCatalog(sql, programUuidParam(request.params.program_uuid));
      if (!catalog) throw notFound(`unknown program ${request.params.program_uuid}`);
      return {
        program_uuid: catalog.programUuid,
        program_key: catalog.programKey,
        organization_key: catalog.organizationKey,
        curricula: catalog.curricula.map((c) => ({
          curriculum_uuid: c.curriculumUuid,
          is_active: c.isActive,
          course_keys: c.courseKeys,
        })),
        courses: catalog.courses.map((c) => ({
          course_key: c.courseKey,
          external_course_key: c.externalCourseKey,
          modes: c.modes,
        })),
      };
    },
  );
}
