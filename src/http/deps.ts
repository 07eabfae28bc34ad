import type { Queue } from 'bullmq';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

/** What the HTTP side uses; the process wiring (src/app.ts) builds it. */
export interface HttpDeps {
  config: Config;
  database: Database;
  metrics: Metrics;
  log: Logger;
  queues: Queue[];
  /** Really checks Redis, Postgres and the workers; resolves to the failing parts. */
  readiness(): Promise<string[]>;
}
