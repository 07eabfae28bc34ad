import type { FastifyInstance } from 'fastify';
import { accountExists, userCourseEnrollments } from '../../db/reads.js';
import { compareCodePoints } from '../../domain/order.js';
import type { HttpDeps } from '../deps.js';
import { notFound } from '../errors.js';

/**
 * A user id as docs/contract.md "Account events" defines it: an integer from 1 to 2^53 − 1. Anything else
 * names no account, and an unknown account is a 404.
 */
function userIdParam(raw: string): number {
  const id = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id) || id < 1) throw notFound(`unknown user ${raw}`);
  return id;
}

export async function registerUserRoutes(api: FastifyInstance, { database }: HttpDeps): Promise<void> {
  const { sql } = database;

  // An account's enrollments span organizations: operator tokens only (docs/contract.md "Who may do what").
  const operators = { config: { access: { scope: 'operator' } as const } };
  api.get<{ Params: { user_id: string } }>('/v1/users/:user_id/course_enrollments', operators, async (request) => {
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
