import { ConfigError, loadConfig } from './config.js';
import { startService } from './app.js';
import { createLogger } from './log.js';

/** `npm start`: one process with migrations, both queues' workers, the expiry schedule and HTTP. */
async function main(): Promise<void> {
  let config;
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

  const service = await startService(config, { logger: log });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const hardStop = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, 9_500);
    hardStop.unref();
    service.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err) => {
        log.error({ err: String(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err) => {
  console.error(`program-enrollments failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
