import path from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { runMigrations } from '../../src/db/migrate.js';
import { locatePostgres, locateRedis } from '../../src/infra/locate.js';

/**
 * Real Redis and Postgres for every test: REDIS_URL / DATABASE_URL when set, else the local
 * services when they answer, else private ones started here (src/infra/locate.ts); a private
 * Postgres keeps its cluster in .data/test-postgres between runs and skips fsync. Migrations run
 * once into a template database; each test file clones it (see service.ts).
 */
declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    adminDatabaseUrl: string;
    templateDatabase: string;
  }
}

export default async function setup(project: TestProject) {
  const redis = await locateRedis();
  const pg = await locatePostgres({ dataDir: path.resolve('.data/test-postgres'), fast: true });
  const adminUrl = pg.url;

  const template = `pe_test_template_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${template}`);
  await admin.unsafe(`create database ${template}`);
  const templateUrl = new URL(adminUrl);
  templateUrl.pathname = `/${template}`;
  await runMigrations(templateUrl.toString());

  project.provide('redisUrl', redis.url);
  project.provide('adminDatabaseUrl', adminUrl);
  project.provide('templateDatabase', template);

  return async () => {
    await admin.unsafe(`drop database if exists ${template} with (force)`).catch(() => {});
    await admin.end({ timeout: 5 });
    await pg.stop();
    await redis.stop();
  };
}
