import type { Tx } from '../db/client.js';
import { claimResult, findResult, storeResult } from '../db/job-ledger.js';
import { learnerId, linkProgramEnrollments, lockLearners, type Learner, type SentLearner } from '../db/learners.js';
import { accountCreatedPayload, type AccountCreatedPayload } from '../queue/payloads.js';
import type { JobContext, JobHandler } from './context.js';
import { JobRejectedError, LockBusyError } from './errors.js';
import { lowerKeys } from './program-lookup.js';

export interface AccountCreatedResult {
  linked: Array<{ program_uuid: string; student_key: string; course_keys: string[] }>;
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Records the account and makes the event's identities its learners (an identity moves to the
 * account the LMS now names; identities the event no longer lists are forgotten). The caller
 * holds the learners' row locks.
 */
async function recordAccount(tx: Tx, payload: AccountCreatedPayload, identities: Learner[]): Promise<void> {
  const [holder] = await tx<{ userId: number }[]>`
    select user_id as "userId" from accounts where username = ${payload.username} and user_id <> ${payload.user_id}`;
  if (holder) throw new JobRejectedError(`username of user_id ${payload.user_id} already belongs to user_id ${holder.userId}`);
  await tx`
    insert into accounts (user_id, username, email) values (${payload.user_id}, ${payload.username}, ${payload.email ?? null})
    on conflict (user_id) do update set username = excluded.username, email = excluded.email, modified_at = now()`;
  const orgs = identities.map((i) => i.organizationKey);
  const lowers = identities.map((i) => i.studentKeyLower);
  await tx`
    update learners l set user_id = null
    where l.user_id = ${payload.user_id}
      and not exists (select 1 from unnest(${orgs}::text[], ${lowers}::text[]) as v(org, lower)
                      where v.org = l.organization_key and v.lower = l.student_key_lower)`;
  if (identities.length) {
    await tx`
      update learners l set user_id = ${payload.user_id}
      from unnest(${orgs}::text[], ${lowers}::text[]) as v(org, lower)
      where l.organization_key = v.org and l.student_key_lower = v.lower`;
  }
}

/**
 * `account-created`: records the account and its identities, then links every waiting PE of
 * those learners, oldest first (SPEC rule 9), in one transaction that holds the learners' locks.
 * The event_id is the event's identity: a replay returns the first result and applies nothing.
 */
export const accountCreatedJob: JobHandler<AccountCreatedPayload, AccountCreatedResult> = {
  schema: accountCreatedPayload,
  async run(payload, ctx: JobContext) {
    const { sql } = ctx.database;
    const key = `account-created/${payload.event_id}`;
    const earlier = await findResult<AccountCreatedResult>(sql, key);
    if (earlier) return earlier;

    // One identity per learner; the event may name the same one twice in different cases.
    const lowers = await lowerKeys(sql, payload.identities.map((i) => i.external_user_key));
    const seen = new Set<string>();
    const identities: SentLearner[] = [];
    payload.identities.forEach((identity, i) => {
      const learner = { organizationKey: identity.organization_key, studentKey: identity.external_user_key, studentKeyLower: lowers[i]! };
      if (seen.has(learnerId(learner))) return;
      seen.add(learnerId(learner));
      identities.push(learner);
    });

    const waitingCourses = identities.length
      ? await sql<{ org: string; lower: string; courseKey: string }[]>`
          select pe.organization_key as org, pe.student_key_lower as lower, pce.course_key as "courseKey"
          from program_enrollments pe
          join unnest(${identities.map((i) => i.organizationKey)}::text[], ${identities.map((i) => i.studentKeyLower)}::text[]) as v(org, lower)
            on pe.organization_key = v.org and pe.student_key_lower = v.lower
          join program_course_enrollments pce on pce.program_enrollment_id = pe.id
          where pe.user_id is null`
      : [];
    const lease = await ctx.locks.acquire(
      waitingCourses.map((w) => ({ organizationKey: w.org, studentKeyLower: w.lower, courseKey: w.courseKey })),
    );
    if (!lease) throw new LockBusyError();
    try {
      return await sql.begin(async (tx) => {
        const claim = await claimResult<AccountCreatedResult>(tx, key);
        if (!claim.claimed) return claim.result;
        await lockLearners(tx, identities);
        await recordAccount(tx, payload, identities);

        const waiting = identities.length
          ? await tx<{ id: number; programUuid: string; studentKey: string }[]>`
              select pe.id, pe.program_uuid as "programUuid", pe.student_key as "studentKey"
              from program_enrollments pe
              join unnest(${identities.map((i) => i.organizationKey)}::text[], ${identities.map((i) => i.studentKeyLower)}::text[]) as v(org, lower)
                on pe.organization_key = v.org and pe.student_key_lower = v.lower
              where pe.user_id is null
              order by pe.id`
          : [];
        const enrolledIn = await tx<{ programUuid: string }[]>`
          select program_uuid as "programUuid" from program_enrollments where user_id = ${payload.user_id}`;
        const taken = new Set(enrolledIn.map((r) => r.programUuid));
        const links: Array<{ peId: number; userId: number }> = [];
        for (const pe of waiting) {
          if (taken.has(pe.programUuid)) {
            ctx.log.warn({ program: pe.programUuid, pe: pe.id }, 'account already has a PE in the program: this PE stays waiting');
            continue;
          }
          taken.add(pe.programUuid);
          links.push({ peId: pe.id, userId: payload.user_id });
        }
        const courseKeys = await linkProgramEnrollments(tx, links, { jobId: ctx.jobId, requestedBy: null }, ctx.log);
        const linked = waiting
          .filter((pe) => courseKeys.has(pe.id))
          .map((pe) => ({ program_uuid: pe.programUuid, student_key: pe.studentKey, course_keys: courseKeys.get(pe.id)! }))
          .sort((a, b) => byCodePoint(a.program_uuid, b.program_uuid) || byCodePoint(a.student_key, b.student_key));
        const result = { linked };
        await storeResult(tx, key, result);
        if (linked.length) ctx.log.info({ user: payload.user_id, linked: linked.length }, 'waiting enrollments linked');
        return result;
      });
    } finally {
      await lease.release();
    }
  },
};
