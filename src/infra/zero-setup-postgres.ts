import { readFileSync } from 'node:fs';
import path from 'node:path';
import { embeddedPostgresUrl, type PrivateService, startEmbeddedPostgres } from './embedded.js';

/**
 * The zero-setup database (`npm start` with DATABASE_URL unset: an embedded cluster under
 * `<DATA_DIR>/postgres`) for the command line. When the service runs, its cluster is found through
 * the postmaster.pid file Postgres keeps in its data directory (the port is its fourth line) and
 * left running; otherwise the cluster is started for the command, as `npm start` would, and
 * stopped afterwards (`started` says which, so the command can tell the user).
 */
export interface ZeroSetupDatabase extends PrivateService {
  started: boolean;
}

/** The port of the cluster running on `clusterDir`, or null when none runs there. */
function runningClusterPort(clusterDir: string): number | null {
  let lines: string[];
  try {
    lines = readFileSync(path.join(clusterDir, 'postmaster.pid'), 'utf8').split('\n');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read ${clusterDir}/postmaster.pid: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return null;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to another user (the cluster runs as `postgres` under root).
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  return port;
}

export async function zeroSetupDatabase(
  dataDir: string,
  onNotice: (message: string) => void,
): Promise<ZeroSetupDatabase> {
  const clusterDir = path.join(dataDir, 'postgres');
  const port = runningClusterPort(path.resolve(clusterDir));
  if (port !== null) return { url: embeddedPostgresUrl(port), started: false, stop: async () => {} };
  const pg = await startEmbeddedPostgres({ dataDir: clusterDir, onNotice });
  return { ...pg, started: true };
}
