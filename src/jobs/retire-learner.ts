import { createHash } from 'node:crypto';
import { insertHistory } from '../db/history.js';
import { claimResult, findResult, storeResult } from '../db/job-ledger.js';
import { lockLearners } from '../db/learners.js';
import { type RetireLearnerPayload, retireLearnerPayload } from '../queue/payloads.js';
import type { JobHandler } from './context.js';

export interface RetireResult {
  retired: number;
}

/**
 * The retired form of a PE's key: `retired_` and 64 hex digits of a one-way hash of the learner
 * (organization and key, case-folded) and the PE. The PE is in it because a key may be uploaded
 * again after retirement, get another account and be retired again in the same program: the two
 * retired PEs must not collide.
 */
export function retiredKey(organizationKey: string, studentKeyLower: string, peId: number, salt: string): string {
  return `retired_${createHash('sha256').update(`${salt}\u001f${organizationKey}\u001f${studentKeyLower}\u001f${peId}`).digest('hex')}`;
}

/**
 * `retire-learner` (GDPR): replaces the account's key on every PE, in the PCEs' copies and in the
 * history (the `changes` of earlier rows included), and forgets the account's identities, so a
 * later upload of the old key creates a new waiting PE. Running it again changes nothing.
 */
export const retireLearnerJob: JobHandler<RetireLearnerPayload, RetireResult> = {
  schema: retireLearnerPayload,
  async run(payload, ctx) {
    const { sql } = ctx.database;
    const earlier = await findResult<RetireResult>(sql, ctx.key);
    if (earlier) return earlier;
    return sql.begin(async (tx) => {
      const claim = await claimResult<RetireResult>(tx, ctx.key);
      if (!claim.claimed) return claim.result;
      const enrollments = await tx<{ id: number; org: string; lower: string }[]>`
        select id, organization_key as org, student_key_lower as lower from program_enrollments
        where user_id = ${payload.user_id} and student_key !~ '^retired_[0-9a-f]{64}$'
        order by id`;
      await lockLearners(
        tx,
        enrollments.map((e) => ({ organizationKey: e.org, studentKey: e.lower, studentKeyLower: e.lower })),
      );
      const retired = enrollments.map((e) => ({
        id: e.id,
        key: retiredKey(e.org, e.lower, e.id, ctx.config.RETIREMENT_SALT),
      }));
      if (retired.length) {
        const ids = retired.map((r) => r.id);
        const keys = retired.map((r) => r.key);
        await tx`
          update program_enrollments pe set student_key = v.key, modified_at = now()
          from unnest(${ids}::bigint[], ${keys}::text[]) as v(id, key) where pe.id = v.id`;
        await tx`
          update program_course_enrollments pce set student_key_lower = v.key, modified_at = now()
          from unnest(${ids}::bigint[], ${keys}::text[]) as v(id, key) where pce.program_enrollment_id = v.id`;
        // Earlier rows that recorded the key now record the retired one.
        await tx`
          update history h set changes = jsonb_set(h.changes, '{student_key}', jsonb_build_array(h.changes->'student_key'->0, to_jsonb(v.key)))
          from unnest(${ids}::bigint[], ${keys}::text[]) as v(id, key)
          where h.program_enrollment_id = v.id and h.entity = 'program_enrollment' and h.changes ? 'student_key'`;
        await insertHistory(
          tx,
          retired.map((r) => ({
            entity: 'program_enrollment',
            entityId: r.id,
            programEnrollmentId: r.id,
            action: 'changed',
            changes: { student_key: [null, r.key] },
          })),
          { jobId: ctx.jobId, requestedBy: null, recordEvents: false },
        );
      }
      // The learners of the old keys go too: nothing may keep a retired key.
      await tx`
        delete from learners l using unnest(${enrollments.map((e) => e.org)}::text[], ${enrollments.map((e) => e.lower)}::text[]) as v(org, lower)
        where l.organization_key = v.org and l.student_key_lower = v.lower`;
      await tx`delete from learners where user_id = ${payload.user_id}`;
      const result = { retired: retired.length };
      ctx.log.info({ user: payload.user_id, retired: retired.length }, 'learner retired');
      await storeResult(tx, ctx.key, result);
      return result;
    });
  },
};
