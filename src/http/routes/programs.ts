import type { FastifyInstance } from 'fastify';
import { loadProgram } from '../../db/programs.js';
import { learnerHistory, listProgramCourseEnrollments, listProgramEnrollments } from '../../db/reads.js';
import { resolveCourseKey } from '../../domain/program.js';
import type { HttpDeps } from '../deps.js';
import { notFound } from '../errors.js';
import { paginate, parsePageRequest } from '../pagination.js';
import { canNameStored } from '../path-params.js';
import { formatTimestamp } from '../timestamps.js';

/** Any 8-4-4-4-12 hex id, as the job payloads accept program uuids. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The program uuid of a path, lower-cased as stored. Something that is not a uuid names no
 * program; checking here keeps it away from Postgres's uuid cast, which would answer 500.
 */
export function programUuidParam(raw: string): string {
  const uuid = raw.trim().toLowerCase();
  if (!UUID.test(uuid)) throw notFound(`unknown program ${raw}`);
  return uuid;
}

export async function registerProgramRoutes(api: FastifyInstance, { database }: HttpDeps): Promise<void> {
  const { sql } = database;

  const read = { config: { access: { scope: 'program', permission: 'read' } as const } };

  api.get<{ Params: { program_uuid: string } }>(
    '/v1/programs/:program_uuid/enrollments',
    read,
    async (request, reply) => {
      const page = parsePageRequest(request.query);
      const programUuid = programUuidParam(request.params.program_uuid);
      return paginate(
        request,
        reply,
        page,
        (windows) => listProgramEnrollments(sql, programUuid, windows),
        () => notFound(`unknown program ${request.params.program_uuid}`),
      );
    },
  );

  api.get<{ Params: { program_uuid: string; course_key: string } }>(
    '/v1/programs/:program_uuid/courses/:course_key/enrollments',
    read,
    async (request, reply) => {
      const page = parsePageRequest(request.query);
      const programUuid = programUuidParam(request.params.program_uuid);
      const program = await loadProgram(sql, programUuid);
      if (!program) throw notFound(`unknown program ${request.params.program_uuid}`);
      // The router has already percent-decoded the key; it may be the course's own or external key.
      const sent = request.params.course_key;
      const courseKey = resolveCourseKey(program, sent);
      if (courseKey === null) throw notFound(`course ${sent} is not in program ${programUuid}`);
      return paginate(
        request,
        reply,
        page,
        (windows) => listProgramCourseEnrollments(sql, programUuid, courseKey, windows),
        () => notFound(`unknown program ${request.params.program_uuid}`),
      );
    },
  );

  api.get<{ Params: { program_uuid: string; student_key: string } }>(
    '/v1/programs/:program_uuid/enrollments/:student_key/history',
    read,
    async (request) => {
      const programUuid = programUuidParam(request.params.program_uuid);
      // Keys are stored trimmed (docs/contract.md "Vocabulary"), so a padded key names the same learner.
      const studentKey = request.params.student_key.trim();
      // No stored key holds NUL or exceeds 255 code points (payload validation refuses them), and
      // Postgres would reject the NUL: such a key simply names nobody.
      const rows = canNameStored(studentKey, 255) ? await learnerHistory(sql, programUuid, studentKey) : [];
      if (rows.length === 0) throw notFound(`no history for student key ${studentKey} in program ${programUuid}`);
      return rows.map((row) => ({
        at: formatTimestamp(row.at),
        entity: row.entity,
        action: row.action,
        changes: row.changes,
        job_id: row.jobId,
        queue: row.queue,
        requested_by: row.requestedBy,
        // PCE rows name their course (docs/contract.md "HTTP", history); null for PE rows.
        course_key: row.courseKey,
      }));
    },
  );
}
