import { randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import {
  findLiveApiTokenByHash,
  insertApiToken,
  listApiTokens,
  revokeApiToken,
  type StoredApiToken,
  touchApiToken,
} from '../db/api-tokens.js';
import type { Queryable } from '../db/client.js';
import type { ApiCaller } from '../domain/api-access.js';
import { hashApiToken, TOKEN_NAME, TOKEN_NAME_RULE, TOKEN_PERMISSIONS } from '../domain/api-tokens.js';
import type { Logger } from '../log.js';

/**
 * Partner tokens (docs/contract.md "Who may do what"): issued, listed and revoked by the command line, and
 * recognized, beside the operator tokens of API_TOKENS, by the HTTP guard.
 */

/** The arguments of `tokens create`, checked before anything is stored. */
export const newApiTokenInput = z.object({
  name: z.string().regex(TOKEN_NAME, `must be ${TOKEN_NAME_RULE}`),
  organizations: z
    .array(
      z
        .string()
        .trim()
        .min(1, 'must not be empty')
        .max(255, 'must be at most 255 characters')
        .refine((v) => !v.includes('\u0000'), 'must not contain NUL characters'),
    )
    .min(1, 'at least one organization is required')
    .transform((keys) => [...new Set(keys)]),
  permission: z.enum(TOKEN_PERMISSIONS),
});
export type NewApiToken = z.infer<typeof newApiTokenInput>;

export class TokenNameTakenError extends Error {
  override name = 'TokenNameTakenError';
}

/** A new token: 32 random bytes, base64url (43 characters), stored only as its digest. */
export async function issueApiToken(
  sql: Queryable,
  input: NewApiToken,
): Promise<{ token: string; stored: StoredApiToken }> {
  const token = randomBytes(32).toString('base64url');
  const stored = await insertApiToken(sql, { ...input, tokenHash: hashApiToken(token) });
  if (!stored) throw new TokenNameTakenError(`a token named ${input.name} exists already: revoke it first`);
  return { token, stored };
}

export const apiTokens = (sql: Queryable) => listApiTokens(sql);

/** Revokes the live token of that name at once for every process (each request reads the table). */
export const revokeApiTokenNamed = (sql: Queryable, name: string) => revokeApiToken(sql, name);

/** last_used_at is written at most this often per token, not once per request. */
export const LAST_USED_RESOLUTION_SECONDS = 60;

/**
 * Recognizes bearer tokens: the operator tokens of API_TOKENS, compared in constant time, then the
 * partner tokens in Postgres, looked up by digest on every request, so a revocation counts at once
 * on every process. last_used_at is refreshed at most once a minute per token and process, in the
 * background: a failure to write it never fails the request.
 */
export class ApiAuthenticator {
  private readonly operators: Array<{ name: string; digest: Buffer }>;
  private readonly touchedAt = new Map<number, number>();

  constructor(
    operatorTokens: ReadonlyArray<{ name: string; token: string }>,
    private readonly sql: Queryable,
    private readonly log: Logger,
  ) {
    this.operators = operatorTokens.map(({ name, token }) => ({
      name,
      digest: Buffer.from(hashApiToken(token), 'hex'),
    }));
  }

  async authenticate(token: string): Promise<ApiCaller | null> {
    const hash = hashApiToken(token);
    const digest = Buffer.from(hash, 'hex');
    // Every operator digest is compared, equal lengths, no early exit: the time says nothing of which.
    let operator: string | null = null;
    for (const o of this.operators) if (timingSafeEqual(o.digest, digest)) operator = o.name;
    if (operator !== null) return { kind: 'operator', name: operator };

    const stored = await findLiveApiTokenByHash(this.sql, hash);
    if (!stored || !timingSafeEqual(Buffer.from(stored.tokenHash, 'hex'), digest)) return null;
    this.noteUse(stored.id);
    return {
      kind: 'partner',
      name: stored.name,
      organizations: stored.organizations,
      permission: stored.permission,
    };
  }

  private noteUse(id: number): void {
    const now = Date.now();
    if (now - (this.touchedAt.get(id) ?? 0) < LAST_USED_RESOLUTION_SECONDS * 1_000) return;
    this.touchedAt.set(id, now);
    touchApiToken(this.sql, id, LAST_USED_RESOLUTION_SECONDS).catch((err: Error) =>
      this.log.warn({ tokenId: id, err: err.message }, 'could not record the last use of an API token'),
    );
  }
}
