/**
 * `--profile`: what each phase of a run cost, counted where it is spent. Postgres statements from
 * `pg_stat_statements` (when the server preloads it; the difference of two snapshots of this
 * database's rows, so nothing is reset for anyone else) and Redis commands from `INFO
 * commandstats` (server-wide: use a Redis of your own). Printed per phase and per unit (a chunk of
 * 1,000 records, an event), to count the round trips each unit makes.
 */
import type { Redis } from 'ioredis';
import type { Sql } from 'postgres';
import { fmt } from './stats.js';

interface StatementRow {
  queryid: string;
  query: string;
  calls: number;
  ms: number;
  rows: number;
  hit: number;
  read: number;
}

type Snapshot = { statements: Map<string, StatementRow>; commands: Map<string, number> };

export class Profiler {
  private constructor(
    private readonly sql: Sql,
    private readonly redis: Redis,
    private readonly statementsAvailable: boolean,
  ) {}

  static async open(sql: Sql, redis: Redis): Promise<Profiler> {
    const available = await sql`create extension if not exists pg_stat_statements`
      .then(() => sql`select 1 from pg_stat_statements limit 1`)
      .then(
        () => true,
        () => false,
      );
    if (!available) process.stderr.write('--profile: pg_stat_statements is not preloaded; Redis commands only\n');
    return new Profiler(sql, redis, available);
  }

  private async snapshot(): Promise<Snapshot> {
    const statements = new Map<string, StatementRow>();
    if (this.statementsAvailable) {
      const rows = await this.sql<StatementRow[]>`
        select queryid::text, query, calls::float8 as calls, total_exec_time as ms, rows::float8 as rows,
               shared_blks_hit::float8 as hit, shared_blks_read::float8 as read
        from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())`;
      for (const r of rows) statements.set(r.queryid, r);
    }
    const commands = new Map<string, number>();
    for (const line of (await this.redis.info('commandstats')).split('\n')) {
      const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
      if (m) commands.set(m[1]!, Number(m[2]));
    }
    return { statements, commands };
  }

  /** Runs `work` and prints what it cost per `units` (e.g. 100 chunks, 10,000 events). */
  async phase<T>(label: string, units: number, unitName: string, work: () => Promise<T>): Promise<T> {
    const before = await this.snapshot();
    const result = await work();
    const after = await this.snapshot();
    const statements = [...after.statements.values()]
      .map((r) => {
        const b = before.statements.get(r.queryid);
        return {
          ...r,
          calls: r.calls - (b?.calls ?? 0),
          ms: r.ms - (b?.ms ?? 0),
          rows: r.rows - (b?.rows ?? 0),
          hit: r.hit - (b?.hit ?? 0),
          read: r.read - (b?.read ?? 0),
        };
      })
      .filter((r) => r.calls > 0)
      .sort((x, y) => y.ms - x.ms);
    const commands = [...after.commands]
      .map(([name, calls]) => ({ name, calls: calls - (before.commands.get(name) ?? 0) }))
      .filter((c) => c.calls > 0)
      .sort((x, y) => y.calls - x.calls);
    const per = (n: number) => fmt(n / units, 2);
    const lines = [
      `--- profile: ${label} (${fmt(units)} ${unitName}s)`,
      `Postgres: ${per(statements.reduce((s, r) => s + r.calls, 0))} statements and ${per(statements.reduce((s, r) => s + r.ms, 0))} ms of execution a ${unitName}`,
      ...statements
        .slice(0, 20)
        .map(
          (r) =>
            `  ${per(r.calls).padStart(7)} calls  ${fmt(r.ms / r.calls, 3).padStart(8)} ms  ${fmt(r.rows / r.calls, 1).padStart(7)} rows  ${fmt((r.hit + r.read) / r.calls, 0).padStart(6)} blks  ${r.query.replace(/\s+/g, ' ').slice(0, 150)}`,
        ),
      `Redis: ${per(commands.reduce((s, c) => s + c.calls, 0))} commands a ${unitName}: ${commands
        .slice(0, 12)
        .map((c) => `${c.name} ${per(c.calls)}`)
        .join(', ')}`,
      '',
    ];
    process.stderr.write(`${lines.join('\n')}\n`);
    return result;
  }
}
