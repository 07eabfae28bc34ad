import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createLogger } from './log.js';

/**
 * `npm start`: runs the service (src/main.ts) as a child process and starts it again, with backoff,
 * when it ends on a fatal error, as docker-compose's `restart:` would. SIGTERM and SIGINT go to the
 * service, whose own clean stop (exit 0) ends the supervisor too. A bad configuration (exit 2)
 * is not retried: the same environment would fail the same way.
 *
 * The service runs in a process group of its own, so that after it dies the private Redis and
 * Postgres it started (in that group) are stopped before the next start reuses their data.
 */
const CONFIG_ERROR_EXIT = 2;
/** A run this long counts as healthy: the next crash starts the backoff from the beginning. */
const HEALTHY_RUN_MS = 60_000;
const FIRST_DELAY_MS = 1_000;
const MAX_DELAY_MS = 30_000;
const LEFTOVER_STOP_MS = 8_000;
const LEFTOVER_SETTLE_MS = 2_000;

const log = createLogger(process.env.LOG_LEVEL ?? 'info').child({ component: 'supervisor' });
const entry = path.join(import.meta.dirname, 'main.ts');

let child: ChildProcess | null = null;
let stopSignal: NodeJS.Signals | null = null;
let crashesInARow = 0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops what the dead service left running in its group (its private Redis and Postgres). */
async function stopLeftovers(pid: number): Promise<void> {
  // After a clean stop the service has stopped its private Redis and Postgres itself, and their
  // last processes may still be exiting: give them a moment before calling them left behind.
  const settled = Date.now() + LEFTOVER_SETTLE_MS;
  while (groupAlive(pid) && Date.now() < settled) await sleep(100);
  if (!groupAlive(pid)) return;
  log.warn({ pid }, 'stopping the processes the service left running');
  process.kill(-pid, 'SIGTERM');
  const deadline = Date.now() + LEFTOVER_STOP_MS;
  while (groupAlive(pid) && Date.now() < deadline) await sleep(100);
  if (groupAlive(pid)) process.kill(-pid, 'SIGKILL');
}

function runOnce(): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const started = Date.now();
  const service = spawn(process.execPath, [...process.execArgv, entry], {
    stdio: 'inherit',
    detached: true,
    env: process.env,
  });
  child = service;
  return new Promise((resolve) => {
    service.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - started }));
  });
}

async function supervise(): Promise<void> {
  for (;;) {
    const { code, signal, ms } = await runOnce();
    const pid = child!.pid!;
    child = null;
    await stopLeftovers(pid);
    if (stopSignal) process.exit(code ?? 0);
    if (code === 0) return process.exit(0);
    if (code === CONFIG_ERROR_EXIT) process.exit(code);
    crashesInARow = ms >= HEALTHY_RUN_MS ? 1 : crashesInARow + 1;
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (crashesInARow - 1));
    log.error({ code, signal, ranMs: ms, restartInMs: delay }, 'the service stopped on a fatal error; restarting it');
    await sleep(delay);
  }
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    stopSignal = signal;
    if (child?.pid) child.kill(signal);
    else process.exit(0);
  });
}

void supervise();
