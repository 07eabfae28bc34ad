import type { FastifyInstance } from 'fastify';
import { accountExists, userCourseEnrollments } from '../../db/reads.js';
import { badRequest, notFound } from '../errors.js';
import { compareCodePoints } from '../order.js';
import type { HttpDeps } from '../server.js';

/** A user id as CONTRACT "Account events" defines it: an integer from 1 to 2^53 − 1. */
function userIdParam(raw: string): number {
  const id = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id) || id < 1) throw badRequest('user_id must be an integer from 1 to 2^53 - 1');
  return id;
}

export async function registerUserRoutes(api: FastifyInstance, { services }: HttpDeps): Promise<void> {
  const { sql } = services.database;

  api.get<{ Params: { user_id: string } }>('/v1/users/:user_id/course_enrollments', async (request) => {
    const userId = userIdParam(request.params.user_id);
    const rows = await userCourseEnrollments(sql, userId);
    // Enrollments prove the account is known; only an empty list needs the account looked up.
    if (rows.length === 0 && !(await accountExists(sql, userId))) throw notFound(`unknown user ${userId}`);
    return rows
      .sort((a, b) => compareCodePoints(a.courseKey, b.courseKey))
      .map((row) => ({
        course_key: row.courseKey,
        mode: row.mode,
        is_active: row.isActive,
        course_staff: row.courseStaff,
      }));
  });
}
