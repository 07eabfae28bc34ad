import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withServiceHeap } from '../../src/config.js';
import { freePort } from '../../src/infra/embedded.js';
import { onCleanup } from './cleanup.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const BENCH_API_TOKEN = 'bench-token';

export interface ServiceProcess {
  url: string;
  pid: number;
  /** The service's peak resident set so far, in MiB (Linux `VmHWM`), or NaN where /proc is missing. */
  peakRssMiB(): number;
  /** SIGTERM, as a supervisor stops it; resolves once the process has exited. */
  stop(): Promise<void>;
}

export interface ServiceOptions {
  redisUrl: string;
  databaseUrl: string;
  prefix: string;
  /** Extra environment (WORKER_CONCURRENCY, LOG_LEVEL, …). */
  env?: Record<string, string>;
  /** Directory for a V8 CPU profile of the service (`node --cpu-prof`), written when it stops. */
  cpuProfileDir?: string;
}

/**
 * The service as `npm start` runs it, in a process of its own: the benchmark's producers and
 * listeners do not share its event loop, and its memory is its own. Its heap has the bound that
 * `npm start` and the Docker image give it (config.ts serviceHeapMiB, README "Heavy use"), so that
 * its peak RSS is that of the service as deployed; `SERVICE_NODE_OPTIONS` replaces the bound
 * (`SERVICE_NODE_OPTIONS=` runs it without one).
 */
export async function startServiceProcess(options: ServiceOptions): Promise<ServiceProcess> {
  const port = await freePort();
  const args = [
    ...(options.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir] : []),
    '--import',
    'tsx',
    'src/main.ts',
  ];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      REDIS_URL: options.redisUrl,
      DATABASE_URL: options.databaseUrl,
      QUEUE_PREFIX: options.prefix,
      RETIREMENT_SALT: 'bench-retirement-salt-not-a-secret',
      API_TOKENS: BENCH_API_TOKEN,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      // `EVENT_BUS=off npm run bench` measures without the outbound events; streams named after the prefix.
      EVENT_BUS: process.env.EVENT_BUS ?? 'on',
      EVENT_BUS_TOPIC_PREFIX: options.prefix,
      ...(process.env.WORKER_CONCURRENCY ? { WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY } : {}),
      NODE_OPTIONS: process.env.SERVICE_NODE_OPTIONS ?? withServiceHeap(undefined, options.env?.BULK_CONCURRENCY),
      ...options.env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = once(child, 'exit');
  const stopNow = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
  const undo = onCleanup(`service process ${child.pid}`, stopNow);
  const url = `http://127.0.0.1:${port}`;
  await untilReady(url, child, 120_000);
  return {
    url,
    pid: child.pid!,
    peakRssMiB() {
      try {
        const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
        return kib ? Number(kib) / 1024 : Number.NaN;
      } catch {
        return Number.NaN;
      }
    },
    stop: undo,
  };
}

async function untilReady(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the service exited with code ${child.exitCode} while starting`);
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`the service was not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
