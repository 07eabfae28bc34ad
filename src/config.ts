import os from 'node:os';
import { z } from 'zod';

/** Empty strings count as unset, so `FOO=` in an env file behaves like leaving FOO out. */
const optionalString = z.preprocess((v) => (v === '' ? undefined : v), z.string().optional());

const commaList = z.preprocess(
  (v) => (v === '' ? undefined : v),
  z
    .string()
    .optional()
    .transform((v) =>
      (v ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
);

/**
 * A token name, the rule of partner token names (domain/api-tokens.ts TOKEN_NAME, repeated here:
 * configuration sits below the domain). No `:` or `,`, which delimit API_TOKENS entries.
 */
const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/;

/**
 * The operator tokens of `API_TOKENS` (docs/contract.md "Who may do what"): each entry is `name:token` or
 * a bare token, named by its position (`token-1` for the first entry). Names are unique.
 */
const operatorTokens = commaList.transform((entries, ctx) => {
  const tokens = entries.map((entry, i) => {
    const colon = entry.indexOf(':');
    if (colon === -1) return { name: `token-${i + 1}`, token: entry };
    const name = entry.slice(0, colon).trim();
    const token = entry.slice(colon + 1).trim();
    if (!TOKEN_NAME.test(name)) {
      ctx.addIssue({
        code: 'custom',
        message: `entry ${i + 1}: the name must be 1 to 100 letters, digits, ".", "_", "@" or "-", starting with a letter or digit`,
      });
    }
    if (token === '') ctx.addIssue({ code: 'custom', message: `entry ${i + 1}: the token after "${name}:" is empty` });
    return { name, token };
  });
  const names = tokens.map((t) => t.name);
  for (const name of new Set(names.filter((n, i) => names.indexOf(n) !== i))) {
    ctx.addIssue({ code: 'custom', message: `the name ${name} is given twice` });
  }
  return tokens;
});

const urlWithScheme = (schemes: string[]) =>
  z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .refine((v) => schemes.some((s) => v.startsWith(`${s}://`)), {
        message: `must be a URL starting with ${schemes.map((s) => `${s}://`).join(' or ')}`,
      })
      .optional(),
  );

const positiveInt = (fallback: number) =>
  z.preprocess((v) => (v === '' || v === undefined ? fallback : v), z.coerce.number().int().positive());

const envSchema = z
  .object({
    REDIS_URL: urlWithScheme(['redis', 'rediss']),
    REDIS_CLUSTER_NODES: commaList.pipe(z.array(z.string().regex(/^[^:\s]+:\d{1,5}$/, 'each seed must be host:port'))),
    DATABASE_URL: urlWithScheme(['postgres', 'postgresql']),
    QUEUE_PREFIX: z.preprocess(
      (v) => (v === '' || v === undefined ? 'bull' : v),
      z.string().regex(/^[A-Za-z0-9_{}.-]+$/, 'may hold only letters, digits and _ { } . -'),
    ),
    PORT: z.preprocess((v) => (v === '' || v === undefined ? 3000 : v), z.coerce.number().int().min(0).max(65535)),
    HOST: z.preprocess((v) => (v === '' || v === undefined ? '0.0.0.0' : v), z.string()),
    /** Operator tokens: `name:token` or bare (named `token-<position>`), docs/contract.md "Who may do what". */
    API_TOKENS: operatorTokens,
    ADMIN_USER: optionalString,
    ADMIN_PASSWORD: optionalString,
    /** `on` (the default): the dashboard shows the queues but cannot retry, clean or delete jobs. */
    DASHBOARD_READ_ONLY: z.preprocess((v) => (v === '' || v === undefined ? 'on' : v), z.enum(['on', 'off'])),
    WORKER_CONCURRENCY: positiveInt(Math.max(4, os.availableParallelism() * 4)),
    /**
     * Jobs in flight on the `accounts` queue in this process. Its `account-created` events that run
     * at the same moment are applied together, up to 64 in the statements of one transaction, two
     * such batches at a time (src/jobs/account-created.ts): the more slots, the larger the batches
     * that form while the earlier ones finish (README "Performance"); past 128 none grows larger.
     */
    ACCOUNTS_CONCURRENCY: positiveInt(64),
    /**
     * Bulk jobs (over 1,000 records) that one process runs at once on `enrollments`, in slots of
     * their own beside WORKER_CONCURRENCY's, so that small jobs always find one free
     * (docs/contract.md, "Fair share").
     */
    BULK_CONCURRENCY: positiveInt(2),
    /**
     * Seconds a large completed job (data and result over 128 KiB: a bulk write) stays in Redis;
     * its result stays in Postgres for 7 days (src/queue/large-results.ts).
     */
    KEEP_LARGE_COMPLETED_SECONDS: positiveInt(300),
    /** Off only in the tests that prove Postgres alone keeps the invariants. */
    LEARNER_LOCKS: z.preprocess((v) => (v === '' || v === undefined ? 'on' : v), z.enum(['on', 'off'])),
    /** How long a stopping process lets active jobs finish before handing them back to the queue. */
    SHUTDOWN_GRACE_MS: z.preprocess(
      (v) => (v === '' || v === undefined ? 6_000 : v),
      z.coerce.number().int().min(0).max(60_000),
    ),
    /** Records per transaction in the bulk write jobs. */
    WRITE_CHUNK_SIZE: positiveInt(1000),
    /**
     * Mixed into the one-way hash of retired keys, so that they cannot be reversed by hashing a
     * list of likely keys. Required with DATABASE_URL (docs/contract.md, "Running it"); the
     * zero-setup start keeps a generated one under DATA_DIR (src/services/retirement-salt.ts).
     */
    RETIREMENT_SALT: optionalString.pipe(z.string().min(16, 'must be a secret of at least 16 characters').optional()),
    /** Outbound events on the Open edX event bus (contract.md "Outbound events"). */
    EVENT_BUS: z.preprocess((v) => (v === '' || v === undefined ? 'on' : v), z.enum(['on', 'off'])),
    /** Redis of the event streams; the queues' Redis when unset. */
    EVENT_BUS_REDIS_URL: urlWithScheme(['redis', 'rediss']),
    /** Prefix of the stream names, joined with a hyphen, as Open edX's EVENT_BUS_TOPIC_PREFIX. */
    EVENT_BUS_TOPIC_PREFIX: z.preprocess(
      (v) => (v === '' ? undefined : v),
      z
        .string()
        .regex(/^[^\s]+$/, 'may not contain white space')
        .optional(),
    ),
    /** Undelivered entries a stream may hold before publishing pauses (lowered only in tests). */
    EVENT_BUS_MAX_UNDELIVERED: positiveInt(1_000_000),
    /** Days a published event stays in the outbox before the daily maintenance deletes it. */
    EVENT_BUS_RETENTION_DAYS: z.preprocess(
      (v) => (v === '' || v === undefined ? 7 : v),
      z.coerce.number().min(0).max(36_500),
    ),
    DATA_DIR: z.preprocess((v) => (v === '' || v === undefined ? '.data' : v), z.string()),
    LOG_LEVEL: z.preprocess(
      (v) => (v === '' || v === undefined ? 'info' : v),
      z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    ),
  })
  .refine((c) => !(c.ADMIN_USER && !c.ADMIN_PASSWORD) && !(c.ADMIN_PASSWORD && !c.ADMIN_USER), {
    message: 'ADMIN_USER and ADMIN_PASSWORD must be set together',
    path: ['ADMIN_PASSWORD'],
  })
  .refine((c) => !c.DATABASE_URL || c.RETIREMENT_SALT, {
    message: 'is required when DATABASE_URL is set: a secret of at least 16 characters, kept for good',
    path: ['RETIREMENT_SALT'],
  })
  // BullMQ's scripts touch many keys of a queue at once; on a cluster they must share a slot.
  .refine((c) => c.REDIS_CLUSTER_NODES.length === 0 || /\{[^{}]+\}/.test(c.QUEUE_PREFIX), {
    message: 'must contain a hash tag such as {bull} when REDIS_CLUSTER_NODES is set',
    path: ['QUEUE_PREFIX'],
  });

export type Config = z.infer<typeof envSchema>;
/** The configuration a running service uses: its RETIREMENT_SALT is known (given or zero-setup). */
export type ServiceConfig = Config & { RETIREMENT_SALT: string };

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment once; a bad value throws a ConfigError that names each variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return Object.freeze(parsed.data);
}

/**
 * The V8 heap (old space, MiB) the service runs with: `npm start` and the Docker image set it
 * (`--max-old-space-size`) unless NODE_OPTIONS names one. Left to itself V8 lets the heap grow
 * toward a quarter of the machine's memory before collecting: with 20 bulk jobs of 100,000
 * records queued, one process peaked at 700–1,200 MiB RSS although what it held alive stayed
 * under 250 MiB. A bound makes V8 collect sooner instead (README "Heavy use"). Each bulk job a
 * process may run at once (BULK_CONCURRENCY, default 2) holds up to about 40 MiB of records and
 * results, hence the allowance per bulk slot over what the idle service needs.
 */
export function serviceHeapMiB(bulkConcurrency: unknown = process.env.BULK_CONCURRENCY): number {
  const slots = Number(bulkConcurrency);
  return 128 + 64 * (Number.isInteger(slots) && slots > 0 ? slots : 2);
}

/**
 * The young generation's semi-space (MiB) the service runs with. Under the old-space bound, V8's
 * default young generation promotes a request's or a chunk's short-lived objects to the old space
 * before they die, and the old space then needs a full collection every few dozen deep pages of an
 * enrollment list: with 16 MiB, the p99 of a deep 1,000-row page fell from 70–103 ms to 40–50 ms
 * (`npm run bench -- --runs 0 --large`, alternate runs; README "Performance"). It costs at most
 * three semi-spaces of memory, 48 MiB.
 */
export const SERVICE_SEMI_SPACE_MIB = 16;

/**
 * NODE_OPTIONS for the service process: `options` with the heap bound and the young generation's
 * size added, each unless `options` names it.
 */
export function withServiceHeap(options: string | undefined, bulkConcurrency?: unknown): string {
  let given = options?.trim() ?? '';
  if (!/--max-old-space-size[=\s]/.test(given))
    given = `${given} --max-old-space-size=${serviceHeapMiB(bulkConcurrency)}`;
  if (!/--max-semi-space-size[=\s]/.test(given)) given = `${given} --max-semi-space-size=${SERVICE_SEMI_SPACE_MIB}`;
  return given.trim();
}
