/** The CLI against CONTRACT "Order" and the README's exit codes. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { describeLinkResult } from '../../src/cli/output.js';

const root = path.resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'pe-cli-edge-'));
const prefix = `t${randomBytes(5).toString('hex')}`;

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  const redis = new Redis(inject('redisUrl'));
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

function cli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, REDIS_URL: inject('redisUrl'), QUEUE_PREFIX: prefix };
    delete env.REDIS_CLUSTER_NODES;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('CLI', () => {
  // CONTRACT "Order": "Sorted" means code-point order of the strings, everywhere.
  it('lists link errors by student key in code-point order', () => {
    const lines = describeLinkResult({ errors: { 'x\u{1F600}': 'e1', 'x\uFF5E': 'e2' } }, 2);
    expect(lines).toEqual(['2 of 2 links failed', '  x\uFF5E: e2', '  x\u{1F600}: e1']);
  });

  // README "Command line": exit codes 1 the job failed, 2 bad input (no job added).
  it('exits 2 for a --job-id BullMQ refuses (digits only, or a colon), adding no job', async () => {
    const csv = path.join(dir, 'p.csv');
    writeFileSync(csv, 'student_key,status\nk1,enrolled\n');
    for (const id of ['123', 'a:b']) {
      const run = await cli(['enroll', '00000000-1111-2222-3333-444444444444', csv, '--job-id', id, '--no-wait']);
      expect(run.code, `${id}: ${run.stderr}`).toBe(2);
    }
  });
});
