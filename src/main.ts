import { type Service, startService } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './log.js';

/** `npm start`: one process with migrations, both queues' workers, the expiry schedule and HTTP. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.LOG_LEVEL);
  process.on('unhandledRejection', (err) => log.error({ err: String(err) }, 'unhandled rejection'));

  // Signals are handled from the start: a SIGTERM during start-up stops the service as soon as it
  // is up, instead of killing the process with its private Redis and Postgres still running.
  let stopping: string | null = null;
  let service: Service | null = null;
  const shutdown = async (signal: string, exitCode = 0) => {
    if (stopping) return;
    stopping = signal;
    if (!service) return; // main() stops it once started
    log.info({ signal }, 'shutting down');
    const hardStop = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, config.SHUTDOWN_GRACE_MS + 3_500);
    hardStop.unref();
    try {
      await service.stop();
      log.info('stopped');
      process.exit(exitCode);
    } catch (err) {
      log.error({ err: String(err) }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // The process cannot be trusted after an uncaught exception: stop cleanly, exit 1, and the
  // supervisor (src/supervisor.ts) starts it again. Jobs resume from their ledger. (postgres.js's
  // own such exception on cut connections is patched away: patches/postgres+3.4.9.patch.)
  process.on('uncaughtException', (err) => {
    log.fatal({ err: err.message, stack: err.stack }, 'uncaught exception; stopping');
    if (!service) process.exit(1);
    void shutdown('uncaughtException', 1);
  });

  service = await startService(config, { logger: log });
  if (stopping) {
    const signal = stopping;
    stopping = null;
    await shutdown(signal);
  }
}

main().catch((err) => {
  console.error(`program-enrollments failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
