import type { Tx } from './client.js';

export interface AccountRecord {
  userId: number;
  username: string;
  email: string | null;
}

/**
 * Records the account (or its new username and email) unless another account holds the username;
 * returns that other account's id, or null when the account was recorded.
 */
export async function upsertAccountUnlessUsernameTaken(tx: Tx, account: AccountRecord): Promise<number | null> {
  const [row] = await tx<{ holder: number | null }[]>`
    with holder as (select user_id from accounts where username = ${account.username} and user_id <> ${account.userId}),
    upsert as (
      insert into accounts (user_id, username, email)
      select ${account.userId}, ${account.username}, ${account.email} where not exists (select 1 from holder)
      on conflict (user_id) do update set username = excluded.username, email = excluded.email, modified_at = now()
    )
    select (select user_id from holder) as holder`;
  return row!.holder;
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

export async function accountIdOfUsername(tx: Tx, username: string): Promise<number | null> {
  const [account] = await tx<
    { userId: number }[]
  >`select user_id as "userId" from accounts where username = ${username}`;
  return account?.userId ?? null;
}
