import type { Queryable, Tx } from '../db/client.js';
import type { LearnerCoursePair } from '../db/program-course-enrollments.js';
import type { SentRecord } from '../domain/write-results.js';

/**
 * A job's records applied in chunks, each chunk in one transaction (src/jobs/chunked.ts runs it
 * inside the job ledger and the learner-course locks). The bulk writes use chunks of up to 1,000
 * records; explicit linking applies each link alone.
 */
export interface ChunkedWork<R extends SentRecord> {
  records: readonly R[];
  /** At most this many records a chunk, when fewer than the configured chunk size. */
  maxChunk?: number;
  /** The learner-course pairs a chunk will write, for the Redis locks. */
  lockPairs(sql: Queryable, chunk: readonly R[]): Promise<LearnerCoursePair[]>;
  /**
   * The tables the job grows and its chunks look rows up in, whose planner statistics it keeps
   * fresh while it runs (history is only written, and is left to autovacuum).
   */
  tables: readonly string[];
  /** Applies one chunk inside its transaction; returns each record's result by its sent key. */
  applyChunk(tx: Tx, chunk: readonly R[]): Promise<Record<string, string>>;
  /** The result of each spelling of a key sent twice or more (docs/rules.md rule 3). */
  duplicated(sent: string): string;
  /** The result of a record that Postgres refused for a lasting reason. */
  failed(err: Error): string;
}
