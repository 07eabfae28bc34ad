/**
 * The package as others use it: built by `npm run build` into dist/, its typed client imported as
 * `program-enrollments/client` by a project of its own (test/fixtures/client-consumer), the
 * compiled service run with plain node as the Docker image runs it, and one Postgres major
 * everywhere (README "Versions").
 */
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createClient } from '../src/client/index.js';
import { EMBEDDED_POSTGRES_MAJOR } from '../src/infra/embedded.js';
import { programPayload } from './support/fixtures.js';
import { serviceEnv, useTestService, waitFor } from './support/service.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const fixture = path.join(root, 'test/fixtures/client-consumer');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

describe('the built package', () => {
  const t = useTestService();

  beforeAll(async () => {
    await run('npm', ['run', 'build'], { cwd: root });
  }, 300_000);

  it('is exported as program-enrollments/client: a project of its own type-checks against it and its producer exits', async () => {
    const modules = path.join(fixture, 'node_modules');
    rmSync(modules, { recursive: true, force: true });
    mkdirSync(modules);
    // What `npm install` of the fixture's `file:../../..` dependency makes: a link to this package.
    symlinkSync(path.relative(modules, root), path.join(modules, 'program-enrollments'));
    const tsc = path.join(root, 'node_modules/.bin/tsc');
    // types.ts holds @ts-expect-error lines: tsc fails if a wrong payload stops being an error too.
    await run(tsc, ['-p', fixture], { cwd: fixture });

    const program = programPayload();
    const producer = createClient({ connection: { url: inject('redisUrl') }, prefix: t.prefix });
    await (await producer.upsertProgram(program)).result({ timeoutMs: 30_000 });
    await producer.close();
    const { stdout } = await run(
      process.execPath,
      [path.join(fixture, 'dist/producer.js'), program.program_uuid, `readme-${randomUUID()}`],
      { cwd: fixture, env: { ...process.env, REDIS_URL: inject('redisUrl'), QUEUE_PREFIX: t.prefix }, timeout: 30_000 },
    );
    expect(stdout).toBe('200 { enrolled: 1 }\n');
  });

  it('runs as compiled JavaScript with plain node (the Docker image), and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [path.join(root, 'dist/main.js')], {
      cwd: root,
      env: { ...process.env, ...serviceEnv(t.databaseUrl, `${t.prefix}-dist`), API_TOKENS: 't', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await waitFor(
        async () => /"url":"(http:[^"]+)"/.exec(output)?.[1],
        60_000,
        'the compiled service to listen',
        100,
      );
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      // The learner-course locks' Lua script is read from beside the compiled module.
      expect(output).not.toContain('ENOENT');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('needs no embedded Postgres in production, and uses one Postgres major everywhere', () => {
    const pkg = JSON.parse(read('package.json')) as Record<string, Record<string, string>>;
    expect(pkg.dependencies!['embedded-postgres']).toBeUndefined();
    expect(pkg.optionalDependencies!['embedded-postgres']).toMatch(new RegExp(`^${EMBEDDED_POSTGRES_MAJOR}\\.`));
    expect(read('Dockerfile')).toContain('--omit=optional');
    expect(read('Dockerfile')).toMatch(/^CMD \["node", "dist\/main\.js"\]$/m);
    expect(read('docker-compose.yml')).toMatch(new RegExp(`image: postgres:${EMBEDDED_POSTGRES_MAJOR}\\n`));
    expect(read('README.md')).toContain(`Postgres ${EMBEDDED_POSTGRES_MAJOR}`);
  });
});
