import { randomUUID } from 'node:crypto';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres, { type Sql } from 'postgres';
import * as schema from './schema.js';

export type Db = PostgresJsDatabase<typeof schema>;
export interface Database {
  /** postgres.js, for the hand-written bulk SQL on hot paths. */
  sql: Sql;
  /** The `application_name` of this pool's connections: unique per process, so its pool can be counted. */
  applicationName: string;
  /** The pool's size. */
  max: number;
  /** drizzle over the same pool, for ordinary queries. */
  db: Db;
  close(): Promise<void>;
}

export function connectDatabase(url: string, options: { max?: number } = {}): Database {
  const applicationName = `program-enrollments ${randomUUID().slice(0, 8)}`;
  const max = options.max ?? 10;
  const sql = postgres(url, {
    max,
    idle_timeout: 30,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: applicationName },
    // bigint columns hold ids and user ids below 2^53; read them as numbers, not strings.
    types: {
      bigint: { to: 20, from: [20], serialize: (v: number | bigint) => String(v), parse: (v: string) => Number(v) },
    },
  });
  const db = drizzle({ client: sql, schema });
  return { sql, applicationName, max, db, close: () => sql.end({ timeout: 5 }) };
}

/** A postgres.js transaction: every write of a job runs inside one. */
export type Tx = postgres.TransactionSql;
/** Either the pool or a transaction, for reads that work in both. */
export type Queryable = Sql | Tx;

/**
 * Refreshes the planner statistics of tables a bulk job is growing. The batched lookups join a
 * chunk's keys to these tables; with statistics taken when a table was small, Postgres plans a
 * scan of the whole table per chunk, and a 100,000-learner job turns quadratic. SKIP_LOCKED: when
 * another job or autovacuum is analyzing the table, that one will do.
 */
export async function refreshStatistics(sql: Sql, tables: readonly string[]): Promise<void> {
  await sql.unsafe(`analyze (skip_locked) ${tables.map((t) => `"${t}"`).join(', ')}`);
}
