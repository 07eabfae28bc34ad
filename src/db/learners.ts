import { RetryableError } from '../domain/errors.js';
import { compareCodePoints } from '../domain/order.js';
import type { Queryable, Tx } from './client.js';

/** A learner: the partner organization's person, keyed case-insensitively. */
export interface Learner {
  organizationKey: string;
  studentKeyLower: string;
}

/** A learner as sent, for `lockLearners`: the spelling is stored when the learner is new. */
export interface SentLearner extends Learner {
  studentKey: string;
}

export const learnerId = (l: Learner) => `${l.organizationKey}\u001f${l.studentKeyLower}`;

const LOWER_KEYS_PER_QUERY = 5_000;

/**
 * Keys lower-cased by Postgres itself, a round trip per LOWER_KEYS_PER_QUERY keys: the stored `student_key_lower` columns
 * are computed by `lower()`, and JavaScript's case mapping differs from it for some characters.
 */
export async function lowerKeys(sql: Queryable, keys: readonly string[]): Promise<string[]> {
  const lowers: string[] = [];
  // A query per slice: the 100,000 keys of a bulk job serialized into one array parameter held
  // the event loop for a synchronous step of their own (docs/contract.md, "Fair share").
  for (let start = 0; start < keys.length; start += LOWER_KEYS_PER_QUERY) {
    const slice = keys.slice(start, start + LOWER_KEYS_PER_QUERY);
    const rows = await sql<{ lower: string }[]>`
      select lower(k) as lower from unnest(${slice}::text[]) with ordinality as t(k, n) order by n`;
    for (const row of rows) lowers.push(row.lower);
  }
  return lowers;
}

/**
 * Locks the learners' rows (creating the missing ones) for the rest of the transaction, in one
 * sorted order, and returns the account each is known to belong to. Every transaction that
 * touches a learner's enrollments or identity does this first, so an account event and a write
 * creating the same learner's PE never miss each other (docs/rules.md rule 9), and two jobs never
 * deadlock. Row locks, not advisory locks: a bulk chunk locks a thousand learners, more than
 * Postgres's shared lock table is sized for.
 */
export async function lockLearners(tx: Tx, sent: readonly SentLearner[]): Promise<Map<string, number | null>> {
  const byId = new Map<string, SentLearner>();
  for (const l of sent) if (!byId.has(learnerId(l))) byId.set(learnerId(l), l);
  // The order Postgres locks them in below (COLLATE "C" sorts UTF-8 by code point).
  const list = [...byId.values()].sort(
    (a, b) =>
      compareCodePoints(a.organizationKey, b.organizationKey) ||
      compareCodePoints(a.studentKeyLower, b.studentKeyLower),
  );
  const accounts = new Map<string, number | null>();
  let missing = list;
  // A learner row deleted by expiry between the two statements is created again on the next pass.
  for (let pass = 0; missing.length > 0; pass += 1) {
    if (pass === 3) throw new RetryableError('learner rows keep disappearing');
    const orgs = missing.map((l) => l.organizationKey);
    // Sent together (one round trip); Postgres runs them in this order.
    const [, rows] = await Promise.all([
      tx`
        insert into learners (organization_key, student_key)
        select v.org, v.key from unnest(${orgs}::text[], ${missing.map((l) => l.studentKey)}::text[]) with ordinality as v(org, key, n)
        order by v.n
        on conflict do nothing`,
      // Locked in key order, one primary-key probe a learner: as a join, the planner hashed the
      // whole table for every chunk until it held some 250,000 learners.
      tx<{ org: string; lower: string; userId: number | null }[]>`
        select l.org, l.lower, l."userId"
        from (
          select * from unnest(${orgs}::text[], ${missing.map((l) => l.studentKeyLower)}::text[]) as v(org, lower)
          order by v.org collate "C", v.lower collate "C"
        ) v
        cross join lateral (
          select organization_key as org, student_key_lower as lower, user_id as "userId" from learners
          where organization_key = v.org and student_key_lower = v.lower
          for update of learners
        ) l`,
    ]);
    for (const r of rows) accounts.set(learnerId({ organizationKey: r.org, studentKeyLower: r.lower }), r.userId);
    missing = missing.filter((l) => !accounts.has(learnerId(l)));
  }
  return accounts;
}

/**
 * The learners that belong to one of the accounts `userIds` and are not among `keep` lose their
 * account. (For several accounts at once, `keep` is the union of what each keeps: a learner one
 * account lets go and another one keeps is attached to that other one anyway.)
 */
export async function detachLearnersExcept(
  tx: Tx,
  userIds: readonly number[],
  keep: readonly Learner[],
): Promise<void> {
  await tx`
    update learners l set user_id = null
    where l.user_id = any(${userIds as number[]}::bigint[])
      and not exists (select 1 from unnest(${keep.map((i) => i.organizationKey)}::text[], ${keep.map((i) => i.studentKeyLower)}::text[]) as v(org, lower)
                      where v.org = l.organization_key and v.lower = l.student_key_lower)`;
}

/** Each learner becomes its account's (`userId`). */
export async function attachLearners(tx: Tx, learners: ReadonlyArray<Learner & { userId: number }>): Promise<void> {
  if (learners.length === 0) return;
  await tx`
    update learners l set user_id = v.user_id
    from unnest(${learners.map((i) => i.organizationKey)}::text[], ${learners.map((i) => i.studentKeyLower)}::text[],
                ${learners.map((i) => i.userId)}::bigint[]) as v(org, lower, user_id)
    where l.organization_key = v.org and l.student_key_lower = v.lower`;
}

export async function deleteLearners(tx: Tx, learners: readonly Learner[]): Promise<void> {
  await tx`
    delete from learners l using unnest(${learners.map((e) => e.organizationKey)}::text[], ${learners.map((e) => e.studentKeyLower)}::text[]) as v(org, lower)
    where l.organization_key = v.org and l.student_key_lower = v.lower`;
}

export async function deleteLearnersOfAccount(tx: Tx, userId: number): Promise<void> {
  await tx`delete from learners where user_id = ${userId}`;
}

/**
 * Learners with neither an account nor an enrollment left: nothing needs their key any more. A
 * learner another transaction holds is in use, and is skipped rather than waited for (the expiry
 * calling this holds the commit order's gate, which that transaction may need to commit).
 */
export async function deleteUnusedLearners(tx: Tx): Promise<void> {
  await tx`
    delete from learners where (organization_key, student_key_lower) in (
      select l.organization_key, l.student_key_lower from learners l
      where l.user_id is null
        and not exists (select 1 from program_enrollments pe
                        where pe.organization_key = l.organization_key and pe.student_key_lower = l.student_key_lower)
      for update skip locked)`;
}
