import { createHash } from 'node:crypto';

/**
 * Bearer tokens of the HTTP API (docs/contract.md "Who may do what"). Pure: naming and hashing rules only.
 *
 * Why SHA-256, neither slow nor keyed: a partner token is 32 random bytes (256 bits of entropy),
 * printed once by `tokens create`. Slow hashes (scrypt, bcrypt) and keys (a pepper) exist to protect
 * low-entropy secrets such as passwords against guessing from a leaked table; nobody can guess a
 * 256-bit value, so a slow hash would only cost CPU on every request (and hand a flood of bogus
 * tokens a cheap way to burn it), and a key would be one more secret to share between every process
 * and the command line, whose loss would void every token. The digest is also the lookup key (a
 * unique index): what an index lookup's timing could reveal is a digest of the caller's own guess.
 */

/** A token's name: shown in `tokens list`, recorded as `api:<name>`. No `:` or `,` (API_TOKENS syntax). */
export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/;
export const TOKEN_NAME_RULE = '1 to 100 letters, digits, ".", "_", "@" or "-", starting with a letter or digit';

/** The two permissions of a partner token on its organizations. */
export const TOKEN_PERMISSIONS = ['read', 'write'] as const;
export type TokenPermission = (typeof TOKEN_PERMISSIONS)[number];

/** The stored form of a token: lowercase hex SHA-256 of its UTF-8 bytes. */
export function hashApiToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** What an upload records as `requested_by` (docs/contract.md "Who may do what"). */
export function requestedByToken(name: string): string {
  return `api:${name}`;
}
