/**
 * docs/contract.md "Running it", second edition: RETIREMENT_SALT is required with DATABASE_URL (it
 * had a public default, so retired keys could be reversed by hashing likely keys); the zero-setup
 * start generates one under the data directory and keeps it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { zeroSetupRetirementSalt } from '../../src/infra/retirement-salt.js';

const root = path.resolve(import.meta.dirname, '../..');

describe('RETIREMENT_SALT', () => {
  it('is required with DATABASE_URL, and the start-up error names it', () => {
    const env = { DATABASE_URL: 'postgres://u@127.0.0.1/db' };
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(/RETIREMENT_SALT/);
    expect(() => loadConfig({ ...env, RETIREMENT_SALT: '' })).toThrow(/RETIREMENT_SALT/);
    expect(() => loadConfig({ ...env, RETIREMENT_SALT: 'short' })).toThrow(/RETIREMENT_SALT/);
    expect(loadConfig({ ...env, RETIREMENT_SALT: 'a-secret-of-sixteen+' }).RETIREMENT_SALT).toBe(
      'a-secret-of-sixteen+',
    );
    // Zero-setup: no DATABASE_URL, no salt needed in the environment.
    expect(loadConfig({}).RETIREMENT_SALT).toBeUndefined();
  });

  it('stops `npm start` with exit code 2 and a message naming it', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: 'postgres://u@127.0.0.1/db', PORT: '0' };
    delete env.RETIREMENT_SALT;
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['--import', 'tsx', path.join(root, 'src/main.ts')],
        { cwd: root, env },
        (_err, _out, err) => resolve({ code: child.exitCode, stderr: err }),
      );
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/RETIREMENT_SALT/);
  });

  it('is generated once under the data directory, readable by its owner only, and reused', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'salt-'));
    try {
      const dataDir = path.join(dir, '.data');
      const first = await zeroSetupRetirementSalt(dataDir);
      expect(first).toMatch(/^[0-9a-f]{64}$/);
      expect((await stat(path.join(dataDir, 'retirement-salt'))).mode & 0o777).toBe(0o600);
      expect(await zeroSetupRetirementSalt(dataDir)).toBe(first);
      const [a, b] = await Promise.all([
        zeroSetupRetirementSalt(path.join(dir, 'other')),
        zeroSetupRetirementSalt(path.join(dir, 'other')),
      ]);
      expect(a).toBe(b);
      expect(a).not.toBe(first);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is passed by docker-compose from .env, which git ignores', async () => {
    const compose = await readFile(path.join(root, 'docker-compose.yml'), 'utf8');
    expect(compose).toMatch(/^\s+RETIREMENT_SALT: \$\{RETIREMENT_SALT:\?/m);
    const ignored = (await readFile(path.join(root, '.gitignore'), 'utf8')).split('\n');
    expect(ignored).toContain('.env');
  });
});
