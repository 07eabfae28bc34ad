import { randomUUID } from 'node:crypto';
import postgres, { type Sql } from 'postgres';
import { RetryableError } from '../domain/errors.js';

/**
 * The pool. drizzle describes the schema and generates the migrations; queries are postgres.js.
 * No drizzle client is built over this pool: drizzle-orm's postgres-js driver replaces the pool's
 * timestamp parsers with the identity, so every timestamp read would come back a string.
 */
export interface Database {
  sql: Sql;
  /** The `application_name` of this pool's connections: unique per process, so its pool can be counted. */
  applicationName: string;
  /** The pool's size. */
  max: number;
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
  return { sql, applicationName, max, close: () => sql.end({ timeout: 5 }) };
}

/** A postgres.js transaction: every write of a job runs inside one. */
export type Tx = postgres.TransactionSql;
/** Either the pool or a transaction, for reads that work in both. */
export type Queryable = Sql | Tx;

/**
 * Refreshes the planner statistics of tables a bulk job is growing. The batched lookups join a
 * chunk's keys to these tables; with statistics taken when a table was small, Postgres plans a
 * scan of the whole table per chunk, and a 100,000-learner job turns quadratic. Those plans need
 * only the tables' sizes and the spread of the joined columns, which a small sample gives (3,000
 * rows a table, statistics target 10, instead of 30,000: a tenth of the time); autovacuum's own
 * ANALYZE refines them later. SKIP_LOCKED: when another job or autovacuum is analyzing the table,
 * that one will do.
 */
export async function refreshStatistics(sql: Sql, tables: readonly string[]): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`set local default_statistics_target = 10`;
    await tx.unsafe(`analyze (skip_locked) ${tables.map((t) => `"${t}"`).join(', ')}`);
  });
}

/** Whether the database answers a query, for readiness. */
export async function databaseAnswers(sql: Sql): Promise<boolean> {
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  }
}

/**
 * A write read its rows in this transaction, then updated them by id: a row that is gone was
 * deleted in between by a statement that does not take the learners' locks (expiry, rule 11,
 * which deletes by age). The write then runs again and reads the rows as they are, instead of
 * recording a change of a row that no longer exists.
 */
export function expectEveryRowUpdated(updated: number, expected: number, what: string): void {
  if (updated < expected)
    throw new RetryableError(`${expected - updated} ${what} row(s) were deleted while this write held them`);
}
