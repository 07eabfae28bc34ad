import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/**
 * `<DATA_DIR>/services.json`: what a zero-setup service started (its private Redis, its embedded
 * Postgres) and its queue prefix, so that the CLI in the same checkout, and an operator with
 * `redis-cli` or `psql`, find them without any variable set.
 */
const servicesFileSchema = z.object({
  redisUrl: z.string().optional(),
  databaseUrl: z.string().optional(),
  queuePrefix: z.string(),
  pid: z.number().int(),
  startedAt: z.string(),
});
export type ServicesFile = z.infer<typeof servicesFileSchema>;

export const servicesFilePath = (dataDir: string) => path.resolve(dataDir, 'services.json');

export function writeServicesFile(dataDir: string, content: ServicesFile): void {
  mkdirSync(path.resolve(dataDir), { recursive: true });
  const file = servicesFilePath(dataDir);
  // Written whole, then renamed: a CLI reading it never sees half a file.
  writeFileSync(`${file}.tmp`, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The file's content, or undefined when there is none (or it is not one of ours). */
export function readServicesFile(dataDir: string): ServicesFile | undefined {
  let raw: string;
  try {
    raw = readFileSync(servicesFilePath(dataDir), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = servicesFileSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
