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

export async function accountIdOfUsername(tx: Tx, username: string): Promise<number | null> {
  const [account] = await tx<
    { userId: number }[]
  >`select user_id as "userId" from accounts where username = ${username}`;
  return account?.userId ?? null;
}
