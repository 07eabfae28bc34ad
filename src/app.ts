import os from 'node:os';
import path from 'node:path';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Config, ServiceConfig } from './config.js';
import { connectDatabase, type Database, databaseAnswers } from './db/client.js';
import { runMigrations } from './db/migrate.js';
import { outboxBacklog } from './db/outbox.js';
import { poolConnections } from './db/pool-stats.js';
import { buildHttpServer } from './http/server.js';
import { type PrivateService, startEmbeddedPostgres, startPrivateRedis } from './infra/embedded.js';
import {
  connectRedis,
  isRedisConnectionError,
  type RedisClient,
  type RedisOutageWatch,
  untilReady,
  watchRedisOutages,
} from './infra/redis.js';
import { zeroSetupRetirementSalt } from './infra/retirement-salt.js';
import { writeServicesFile } from './infra/services-file.js';
import type { JobDeps } from './jobs/context.js';
import { handlers } from './jobs/index.js';
import { exporterLease } from './lock/exporter-lease.js';
import { LearnerCourseLocks } from './lock/learner-course-locks.js';
import { createLogger, type Logger } from './log.js';
import { createMetrics } from './metrics.js';
import type { EventRelay } from './queue/event-relay.js';
import { startEventRelayThread } from './queue/event-relay-thread.js';
import { LARGE_RESULT_TRIM, type LargeResultTrim, trimLargeResults } from './queue/large-results.js';
import { createQueues, QUEUE_NAMES, type QueueName } from './queue/queues.js';
import { scheduleExpiry } from './queue/schedules.js';
import { LEARNER_LOCK_TTL_MS, startWorkers, type WorkerSet } from './queue/workers.js';

export interface Service {
  /** The HTTP base URL, e.g. http://127.0.0.1:3000 */
  url: string;
  redisUrl: string | undefined;
  databaseUrl: string;
  queues: Record<QueueName, Queue>;
  database: Database;
  http: FastifyInstance;
  log: Logger;
  /** Stops taking jobs, finishes or hands back active ones, closes connections and private services. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Run the workers (default true); a process may serve only HTTP. */
  workers?: boolean;
  logger?: Logger;
}

/** Starts everything `npm start` runs: private services when needed, migrations, workers, HTTP. */
export async function startService(config: Config, options: StartOptions = {}): Promise<Service> {
  const log = options.logger ?? createLogger(config.LOG_LEVEL);
  const privateServices: PrivateService[] = [];
  const redisConnections: RedisClient[] = [];
  let database: Database | undefined;
  let workers: WorkerSet | undefined;
  let http: FastifyInstance | undefined;
  let queues: Record<QueueName, Queue> | undefined;
  let relay: EventRelay | undefined;
  let largeResults: LargeResultTrim | undefined;

  // Each step of the shutdown has a deadline: with Redis gone, BullMQ's closes can wait forever.
  const within = (step: string, work: Promise<unknown> | undefined, ms: number) =>
    Promise.race([
      Promise.resolve(work).catch((err: Error) => log.error({ err: err.message }, `shutdown: ${step} failed`)),
      new Promise((r) => setTimeout(r, ms).unref()),
    ]);
  let outages: RedisOutageWatch | undefined;
  const stop = async () => {
    // The connections closed from here on are closed on purpose: not an outage to warn about.
    outages?.closing();
    await within('closing workers', workers?.close(config.SHUTDOWN_GRACE_MS), config.SHUTDOWN_GRACE_MS + 2_500);
    await within('stopping the event relay', relay?.stop(), 2_000);
    await within('stopping the large result trim', largeResults?.stop(), 1_000);
    await within('closing HTTP', http?.close(), 1_000);
    if (queues) await within('closing queues', Promise.all(Object.values(queues).map((q) => q.close())), 1_000);
    await within('closing Redis', Promise.all(redisConnections.map((c) => c.quit())), 1_000);
    for (const c of redisConnections) c.disconnect();
    await database?.close().catch(() => {});
    for (const s of privateServices.reverse())
      await s.stop().catch((err) => log.error({ err: err.message }, 'stopping a private service'));
  };

  try {
    let redisUrl = config.REDIS_URL;
    let startedRedisUrl: string | undefined;
    if (!redisUrl && config.REDIS_CLUSTER_NODES.length === 0) {
      const dataDir = path.join(config.DATA_DIR, 'redis');
      const redis = await startPrivateRedis({ dataDir, onNotice: (m) => log.warn(m) });
      privateServices.push(redis);
      redisUrl = startedRedisUrl = redis.url;
      log.info({ url: redis.url, dataDir }, 'REDIS_URL is unset: started a private redis-server');
    }
    let databaseUrl = config.DATABASE_URL;
    let startedDatabaseUrl: string | undefined;
    if (!databaseUrl) {
      const pg = await startEmbeddedPostgres({
        dataDir: path.join(config.DATA_DIR, 'postgres'),
        onNotice: (m) => log.warn(m),
      });
      privateServices.push(pg);
      databaseUrl = startedDatabaseUrl = pg.url;
      log.info(
        { dataDir: path.join(config.DATA_DIR, 'postgres') },
        'DATABASE_URL is unset: started an embedded Postgres',
      );
    }

    // Required with DATABASE_URL (the configuration refuses to start without it); the zero-setup
    // database gets one generated and kept beside it.
    const serviceConfig: ServiceConfig = {
      ...config,
      RETIREMENT_SALT: config.RETIREMENT_SALT ?? (await zeroSetupRetirementSalt(config.DATA_DIR)),
    };

    await runMigrations(databaseUrl);
    database = connectDatabase(databaseUrl, { max: Math.max(10, Math.min(config.WORKER_CONCURRENCY, 40)) });

    if (startedRedisUrl || startedDatabaseUrl) {
      writeServicesFile(config.DATA_DIR, {
        redisUrl: startedRedisUrl,
        databaseUrl: startedDatabaseUrl,
        queuePrefix: config.QUEUE_PREFIX,
        pid: process.pid,
        startedAt: new Date().toISOString(),
      });
    }

    const metrics = createMetrics();
    const outageWatch = watchRedisOutages(log, () => metrics.redisReconnects.inc());
    outages = outageWatch;
    const target = { url: redisUrl, clusterNodes: config.REDIS_CLUSTER_NODES };
    const connect = (name: string, forWorker = true) => {
      const c = connectRedis(target, { forWorker, name });
      outageWatch.watch(c, name);
      redisConnections.push(c);
      return c;
    };
    // HTTP and metrics use connections that fail fast while Redis is away (they answer errors, not
    // hang); the job side uses connections that wait for Redis to come back.
    const shared = connect('shared', false);
    const queueConnection = connect('queues', false);
    await Promise.all([untilReady(shared), untilReady(queueConnection)]);
    queues = createQueues(queueConnection, config.QUEUE_PREFIX);
    for (const q of Object.values(queues))
      q.on('error', (err) => {
        if (!isRedisConnectionError(err)) log.warn({ queue: q.name, err: err.message }, 'queue error');
      });

    const db = database;
    const lease = exporterLease(shared, config.QUEUE_PREFIX);
    metrics.watch({
      queues: Object.values(queues),
      holdsExporterLease: () => lease.hold(),
      databaseConnections: () => poolConnections(db.sql, db.applicationName),
      databasePoolMax: db.max,
    });
    const services: JobDeps = {
      config: serviceConfig,
      database,
      log,
      metrics,
      locks: new LearnerCourseLocks(connect('locks'), config.QUEUE_PREFIX, {
        enabled: config.LEARNER_LOCKS === 'on',
        ttlMs: LEARNER_LOCK_TTL_MS,
      }),
    };

    if (config.EVENT_BUS === 'on') {
      const outbox = database;
      metrics.watchOutbox(() => outboxBacklog(outbox.sql));
      relay = startEventRelayThread(
        {
          databaseUrl,
          eventBus: config.EVENT_BUS_REDIS_URL ? { url: config.EVENT_BUS_REDIS_URL, clusterNodes: [] } : target,
          settings: {
            topicPrefix: config.EVENT_BUS_TOPIC_PREFIX,
            maxUndelivered: config.EVENT_BUS_MAX_UNDELIVERED,
            batchSize: 1_000,
            sourceHost: os.hostname(),
          },
          logLevel: log.level,
        },
        { log, metrics },
      );
    }

    if (options.workers !== false) {
      workers = startWorkers(services, (name) => connect(name), handlers);
      await scheduleExpiry(queues.enrollments);
      largeResults = trimLargeResults(
        Object.values(queues),
        shared,
        config.QUEUE_PREFIX,
        { ...LARGE_RESULT_TRIM, keepMs: config.KEEP_LARGE_COMPLETED_SECONDS * 1000 },
        log,
      );
    }

    http = await buildHttpServer({
      config,
      database,
      metrics,
      log,
      queues: QUEUE_NAMES.map((n) => queues![n]),
      redisTarget: target,
      async readiness() {
        const failing: string[] = [];
        await shared.ping().catch(() => failing.push('redis'));
        if (!(await databaseAnswers(db.sql))) failing.push('postgres');
        if (workers && !workers.isRunning()) failing.push('workers');
        return failing;
      },
    });
    const address = await http.listen({ port: config.PORT, host: config.HOST });
    const url = address.replace('0.0.0.0', '127.0.0.1').replace('[::]', '127.0.0.1');
    log.info(
      { url, workers: options.workers !== false, concurrency: config.WORKER_CONCURRENCY },
      'program-enrollments is running',
    );
    return { url, redisUrl, databaseUrl, queues, database, http, log, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
