import net from 'node:net';
import path from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { runMigrations } from '../../src/db/migrate.js';
import { startEmbeddedPostgres, startPrivateRedis, type PrivateService } from '../../src/services/embedded.js';

/**
 * Real Redis and Postgres for every test: REDIS_URL / DATABASE_URL when set, else the local
 * services when they answer, else private ones started here. Migrations run once into a template
 * database; each test file clones it (see service.ts).
 */
declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    adminDatabaseUrl: string;
    templateDatabase: string;
  }
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(1_000);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

async function postgresAnswers(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

export default async function setup(project: TestProject) {
  const started: PrivateService[] = [];

  let redisUrl = process.env.REDIS_URL;
  if (!redisUrl) {
    if (await answers(6379)) redisUrl = 'redis://127.0.0.1:6379';
    else {
      const redis = await startPrivateRedis();
      started.push(redis);
      redisUrl = redis.url;
    }
  }

  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const local = 'postgres://postgres@127.0.0.1:5432/postgres';
    if ((await answers(5432)) && (await postgresAnswers(local))) adminUrl = local;
    else {
      const pg = await startEmbeddedPostgres({ dataDir: path.resolve('.data/test-postgres'), fast: true });
      started.push(pg);
      adminUrl = pg.url;
    }
  }

  const template = `pe_test_template_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${template}`);
  await admin.unsafe(`create database ${template}`);
  const templateUrl = new URL(adminUrl);
  templateUrl.pathname = `/${template}`;
  await runMigrations(templateUrl.toString());

  project.provide('redisUrl', redisUrl);
  project.provide('adminDatabaseUrl', adminUrl);
  project.provide('templateDatabase', template);

  return async () => {
    await admin.unsafe(`drop database if exists ${template} with (force)`).catch(() => {});
    await admin.end({ timeout: 5 });
    for (const s of started.reverse()) await s.stop();
  };
}
