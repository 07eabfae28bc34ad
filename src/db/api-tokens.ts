import type { TokenPermission } from '../domain/api-tokens.js';
import type { Queryable } from './client.js';

/** The `api_tokens` table: partner tokens, stored as digests (schema.ts `apiTokens`). */

export interface StoredApiToken {
  id: number;
  name: string;
  organizations: string[];
  permission: TokenPermission;
  /** Times are ISO-8601 UTC strings (drizzle turns off postgres.js's timestamp parsing, see reads.ts). */
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const COLUMNS = (sql: Queryable) => sql`
  id, name, organizations, permission,
  to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "createdAt",
  to_char(last_used_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "lastUsedAt",
  to_char(revoked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "revokedAt"`;

/** Inserts a live token; null when a live token already has that name. */
export async function insertApiToken(
  sql: Queryable,
  token: { name: string; tokenHash: string; organizations: readonly string[]; permission: TokenPermission },
): Promise<StoredApiToken | null> {
  const [row] = await sql<StoredApiToken[]>`
    insert into api_tokens (name, token_hash, organizations, permission)
    values (${token.name}, ${token.tokenHash}, ${token.organizations as string[]}, ${token.permission})
    on conflict (name) where revoked_at is null do nothing
    returning ${COLUMNS(sql)}`;
  return row ?? null;
}

/** The live (not revoked) token with that digest, with its digest for the constant-time check. */
export async function findLiveApiTokenByHash(
  sql: Queryable,
  tokenHash: string,
): Promise<(StoredApiToken & { tokenHash: string }) | null> {
  const [row] = await sql<(StoredApiToken & { tokenHash: string })[]>`
    select ${COLUMNS(sql)}, token_hash as "tokenHash"
    from api_tokens where token_hash = ${tokenHash} and revoked_at is null`;
  return row ?? null;
}

/**
 * Sets last_used_at to now unless another request (of any process) did so within `withinSeconds`:
 * the condition in SQL keeps concurrent processes from writing the row once each.
 */
export async function touchApiToken(sql: Queryable, id: number, withinSeconds: number): Promise<void> {
  await sql`
    update api_tokens set last_used_at = now()
    where id = ${id}
      and (last_used_at is null or last_used_at < now() - make_interval(secs => ${withinSeconds}))`;
}

/** Every token, live and revoked, by name (code-point order) then creation. */
export async function listApiTokens(sql: Queryable): Promise<StoredApiToken[]> {
  return sql<StoredApiToken[]>`select ${COLUMNS(sql)} from api_tokens order by name collate "C", id`;
}

/** Revokes the live token of that name; false when there is none. */
export async function revokeApiToken(sql: Queryable, name: string): Promise<boolean> {
  const rows = await sql`update api_tokens set revoked_at = now() where name = ${name} and revoked_at is null`;
  return rows.count > 0;
}
