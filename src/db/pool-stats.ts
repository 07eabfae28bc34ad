import type { Sql } from 'postgres';

/**
 * This process's Postgres connections, as the server sees them: every connection of the pool
 * carries the process's own `application_name` (src/db/client.ts). The connection running this
 * query is counted as idle: it is only busy reading these numbers.
 */
export async function poolConnections(sql: Sql, applicationName: string): Promise<{ open: number; busy: number }> {
  const [row] = await sql<{ open: number; busy: number }[]>`
    select count(*)::int + 1 as open, count(*) filter (where state <> 'idle')::int as busy
    from pg_stat_activity
    where application_name = ${applicationName} and pid <> pg_backend_pid()`;
  return row ?? { open: 0, busy: 0 };
}
