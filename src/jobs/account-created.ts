import type { Tx } from '../db/client.js';
import { claimResult, storeResult } from '../db/job-ledger.js';
import { type Learner, learnerId, linkProgramEnrollments, lockLearners, type SentLearner } from '../db/learners.js';
import { compareCodePoints } from '../domain/order.js';
import type { LearnerCourse } from '../lock/learner-course-locks.js';
import { type AccountCreatedPayload, accountCreatedPayload } from '../queue/payloads.js';
import type { JobContext, JobHandler } from './context.js';
import { JobRejectedError, LockBusyError } from './errors.js';

export interface AccountCreatedResult {
  linked: Array<{ program_uuid: string; student_key: string; course_keys: string[] }>;
}

/**
 * Records the account and makes the event's identities its learners (an identity moves to the
 * account the LMS now names; identities the event no longer lists are forgotten). The caller
 * holds the learners' row locks.
 */
async function recordAccount(tx: Tx, payload: AccountCreatedPayload, identities: Learner[]): Promise<void> {
  const [row] = await tx<{ holder: number | null }[]>`
    with holder as (select user_id from accounts where username = ${payload.username} and user_id <> ${payload.user_id}),
    upsert as (
      insert into accounts (user_id, username, email)
      select ${payload.user_id}, ${payload.username}, ${payload.email ?? null} where not exists (select 1 from holder)
      on conflict (user_id) do update set username = excluded.username, email = excluded.email, modified_at = now()
    )
    select (select user_id from holder) as holder`;
  if (row!.holder !== null)
    throw new JobRejectedError(`username of user_id ${payload.user_id} already belongs to user_id ${row!.holder}`);
  // Identities the event no longer lists lose the account; the ones it lists get it. Two
  // statements, each on an index (by account, then by learner).
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

    // One round trip before the transaction: each identity's key as Postgres lower-cases it, and
    // the courses of its waiting PEs, whose learner-course locks the event takes. (A replayed
    // event finds its earlier result once inside the transaction.)
    const sent = payload.identities;
    const rows = sent.length
      ? await sql<{ n: number; lower: string; courseKey: string | null }[]>`
          select v.n::int as n, lower(v.key) as lower, pce.course_key as "courseKey"
          from unnest(${sent.map((i) => i.organization_key)}::text[], ${sent.map((i) => i.external_user_key)}::text[])
            with ordinality as v(org, key, n)
          left join program_enrollments pe
            on pe.organization_key = v.org and pe.student_key_lower = lower(v.key) and pe.user_id is null
          left join program_course_enrollments pce on pce.program_enrollment_id = pe.id
          order by v.n`
      : [];
    // One identity per learner; the event may name the same one twice in different cases.
    const identities: SentLearner[] = [];
    const seen = new Set<string>();
    const pairs: LearnerCourse[] = [];
    for (const row of rows) {
      const identity = sent[row.n - 1]!;
      const learner = {
        organizationKey: identity.organization_key,
        studentKey: identity.external_user_key,
        studentKeyLower: row.lower,
      };
      if (row.courseKey !== null)
        pairs.push({ organizationKey: learner.organizationKey, studentKeyLower: row.lower, courseKey: row.courseKey });
      if (seen.has(learnerId(learner))) continue;
      seen.add(learnerId(learner));
      identities.push(learner);
    }
    const lease = await ctx.locks.acquire(pairs);
    if (!lease) throw new LockBusyError();
    try {
      return await sql.begin(async (tx) => {
        const claim = await claimResult<AccountCreatedResult>(tx, key);
        if (!claim.claimed) return claim.result;
        await lockLearners(tx, identities);
        await recordAccount(tx, payload, identities);

        // The learners' waiting PEs, oldest first, and whether the account already has a PE in
        // their program (a second one would break the one-PE-per-program rule: that PE waits).
        const waiting = identities.length
          ? await tx<{ id: number; programUuid: string; studentKey: string; taken: boolean }[]>`
              select pe.id, pe.program_uuid as "programUuid", pe.student_key as "studentKey",
                     exists (select 1 from program_enrollments o
                             where o.user_id = ${payload.user_id} and o.program_uuid = pe.program_uuid) as taken
              from program_enrollments pe
              join unnest(${identities.map((i) => i.organizationKey)}::text[], ${identities.map((i) => i.studentKeyLower)}::text[]) as v(org, lower)
                on pe.organization_key = v.org and pe.student_key_lower = v.lower
              where pe.user_id is null
              order by pe.id`
          : [];
        const taken = new Set(waiting.filter((pe) => pe.taken).map((pe) => pe.programUuid));
        const links: Array<{ peId: number; userId: number }> = [];
        for (const pe of waiting) {
          if (taken.has(pe.programUuid)) {
            ctx.log.warn(
              { program: pe.programUuid, pe: pe.id },
              'account already has a PE in the program: this PE stays waiting',
            );
            continue;
          }
          taken.add(pe.programUuid);
          links.push({ peId: pe.id, userId: payload.user_id });
        }
        const courseKeys = await linkProgramEnrollments(
          tx,
          links,
          { jobId: ctx.jobId, requestedBy: null, recordEvents: ctx.config.EVENT_BUS === 'on' },
          ctx.log,
        );
        const linked = waiting
          .filter((pe) => courseKeys.has(pe.id))
          .map((pe) => ({
            program_uuid: pe.programUuid,
            student_key: pe.studentKey,
            course_keys: courseKeys.get(pe.id)!,
          }))
          .sort(
            (a, b) =>
              compareCodePoints(a.program_uuid, b.program_uuid) || compareCodePoints(a.student_key, b.student_key),
          );
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
