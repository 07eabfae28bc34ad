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

      // Uploads are parsed on a worker thread whose entry is compiled JavaScript too (no tsx
      // here): two uploads in a row are accepted and applied.
      const program = programPayload();
      const producer = createClient({ connection: { url: inject('redisUrl') }, prefix: `${t.prefix}-dist` });
      try {
        await (await producer.upsertProgram(program)).result({ timeoutMs: 60_000 });
      } finally {
        await producer.close();
      }
      for (const n of [1, 2]) {
        const form = new FormData();
        form.append('file', new Blob([`student_key,status\ndist-${n}-a,enrolled\ndist-${n}-b,pending\n`]), 'u.csv');
        const upload = await fetch(`${url}/api/v1/programs/${program.program_uuid}/enrollments/upload`, {
          method: 'POST',
          headers: { authorization: 'Bearer t' },
          body: form,
        });
        expect(upload.status).toBe(202);
        const { job_id } = (await upload.json()) as { job_id: string };
        const status = await waitFor(
          async () => {
            const answer = (await (
              await fetch(`${url}/api/v1/jobs/${job_id}`, { headers: { authorization: 'Bearer t' } })
            ).json()) as { state: string; text: string | null };
            return answer.state === 'Succeeded' || answer.state === 'Failed' ? answer : undefined;
          },
          60_000,
          `the compiled service's upload ${n} to finish`,
        );
        expect(status).toMatchObject({ state: 'Succeeded', text: '200' });
      }
      // The event relay's thread runs from its compiled entry as well: one that cannot start fails
      // within a second of the service's start, and says so.
      expect(output).not.toContain('event relay thread');
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
