import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * The zero-setup RETIREMENT_SALT: generated once under the data directory, next to the embedded
 * Postgres whose retired keys it protects, and read back at every later start (docs/contract.md,
 * "Running it"). Only the owner may read it.
 */
export async function zeroSetupRetirementSalt(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'retirement-salt');
  const existing = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (existing !== null && existing.trim().length >= 16) return existing.trim();
  await mkdir(dataDir, { recursive: true });
  const salt = randomBytes(32).toString('hex');
  // 'wx': two processes starting at once keep the first one's salt.
  await writeFile(file, `${salt}\n`, { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  return (await readFile(file, 'utf8')).trim();
}
