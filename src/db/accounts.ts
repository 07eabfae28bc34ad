import type { Tx } from './client.js';

export interface AccountRecord {
  userId: number;
  username: string;
  email: string | null;
}

/**
 * Records the accounts (or their new usernames and emails), each unless another account holds its
 * username; returns, by user_id, the account holding the username of each one not recorded. The
 * accounts have distinct user_ids and usernames, and are upserted in user_id order.
 */
export async function upsertAccountsUnlessUsernameTaken(
  tx: Tx,
  accounts: readonly AccountRecord[],
): Promise<Map<number, number>> {
  const rows = await tx<{ userId: number; holder: number }[]>`
    with v as (
      select * from unnest(${accounts.map((a) => a.userId)}::bigint[], ${accounts.map((a) => a.username)}::text[],
                           ${accounts.map((a) => a.email)}::text[]) as v(user_id, username, email)
    ),
    holder as (
      select v.user_id, a.user_id as holder from v join accounts a on a.username = v.username and a.user_id <> v.user_id
    ),
    upsert as (
      insert into accounts (user_id, username, email)
      select v.user_id, v.username, v.email from v where not exists (select 1 from holder h where h.user_id = v.user_id)
      order by v.user_id
      on conflict (user_id) do update set username = excluded.username, email = excluded.email, modified_at = now()
    )
    select user_id as "userId", holder from holder`;
  return new Map(rows.map((r) => [r.userId, r.holder]));
}

/**
 * Locks a username for the rest of the transaction, whether or not an account holds it yet: the
 * account event that records it takes it exclusively, an explicit link that looks it up takes it
 * shared. A row lock cannot cover a row not inserted yet; this can, so a link never misses an
 * account recorded by a transaction that committed before it (nor sees one after).
 */
export async function lockUsername(tx: Tx, username: string, mode: 'exclusive' | 'shared'): Promise<void> {
  const key = tx`hashtextextended(${`username:${username}`}, 0)`;
  if (mode === 'exclusive') await tx`select pg_advisory_xact_lock(${key})`;
  else await tx`select pg_advisory_xact_lock_shared(${key})`;
}

/**
 * `lockUsername` exclusively for several usernames, in one statement, in the order of their lock
 * keys (two transactions locking some of the same usernames never deadlock on them).
 */
export async function lockUsernames(tx: Tx, usernames: readonly string[]): Promise<void> {
  await tx`
    select pg_advisory_xact_lock(k.key)
    from (select hashtextextended('username:' || u, 0) as key from unnest(${usernames as string[]}::text[]) as u
          order by 1 offset 0) k`;
}

export async function accountIdOfUsername(tx: Tx, username: string): Promise<number | null> {
  const [account] = await tx<
    { userId: number }[]
  >`select user_id as "userId" from accounts where username = ${username}`;
  return account?.userId ?? null;
}
