import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { checkImports } from '../scripts/check-imports.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = (name: string) => path.join(here, 'fixtures/imports', name);
const script = path.join(here, '../scripts/check-imports.ts');

/** Runs the script as CI does, to its exit; the exit code and both streams. */
async function runScript(root: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script, '--root', root]);
    return { code: 0, stdout, stderr };
  } catch (e) {
    const failed = e as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('import checker (scripts/check-imports.ts)', () => {
  it('passes a tree whose imports all point down a layer or stay acyclic within one', () => {
    expect(checkImports(fixture('clean'))).toEqual({
      modules: 21,
      cycles: [],
      upward: [],
      unplaced: [],
      unresolved: [],
    });
  });

  it('reports each cycle as its path, type-only imports included', () => {
    const report = checkImports(fixture('cycle'));
    expect(report.cycles).toEqual([
      ['src/http/api.ts', 'src/http/routes/users.ts', 'src/http/server.ts', 'src/http/api.ts'],
      ['src/http/api.ts', 'src/http/server.ts', 'src/http/api.ts'],
      ['src/jobs/a.ts', 'src/jobs/b.ts', 'src/jobs/c.ts', 'src/jobs/a.ts'],
    ]);
    expect(report.upward).toEqual([]);
  });

  it('reports every import against the layers: static, type-only, re-export, dynamic and import() types', () => {
    const report = checkImports(fixture('upward'));
    expect(report.upward.map((u) => `${u.from} -> ${u.to} (${u.fromLayer} -> ${u.toLayer})`)).toEqual([
      'src/contract/payloads.ts -> src/domain/statuses.ts (contract -> domain)',
      'src/db/programs.ts -> src/queue/payloads.ts (db -> queue)',
      'src/domain/rules.ts -> src/log.ts (domain -> support)',
      'src/jobs/run.ts -> src/http/server.ts (jobs -> http)',
      'src/lock/locks.ts -> src/db/programs.ts (lock -> db)',
      'src/use-cases/programs.ts -> src/queue/payloads.ts (use-cases -> queue)',
    ]);
    expect(report.cycles).toEqual([]);
  });

  it('reports files in no layer and relative imports that name no file', () => {
    const report = checkImports(fixture('unplaced'));
    expect(report.unplaced).toEqual(['src/services/redis.ts']);
    expect(report.unresolved).toEqual([{ from: 'src/config.ts', specifier: './missing.js' }]);
  });

  it('exits 1 with the list on a failing tree, 0 on a clean one', async () => {
    const [cycle, upward, clean] = await Promise.all([
      runScript(fixture('cycle')),
      runScript(fixture('upward')),
      runScript(fixture('clean')),
    ]);
    expect(cycle.code).toBe(1);
    expect(cycle.stderr).toContain('3 import cycle(s):');
    expect(cycle.stderr).toContain('src/http/api.ts -> src/http/server.ts -> src/http/api.ts');
    expect(upward.code).toBe(1);
    expect(upward.stderr).toContain(
      'src/db/programs.ts -> src/queue/payloads.ts: db may not import queue (it may import db, domain, contract, support)',
    );
    expect(clean.code).toBe(0);
    expect(clean.stdout).toContain('21 modules, no cycle, no import against the layers');
  });
});
