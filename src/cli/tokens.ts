import { type Command, Option } from 'commander';
import { describeIssues } from '../contract/payloads.js';
import type { StoredApiToken } from '../db/api-tokens.js';
import { connectDatabase } from '../db/client.js';
import { runMigrations } from '../db/migrate.js';
import { TOKEN_PERMISSIONS } from '../domain/api-tokens.js';
import { zeroSetupDatabase } from '../infra/zero-setup-postgres.js';
import {
  apiTokens,
  issueApiToken,
  newApiTokenInput,
  revokeApiTokenNamed,
  TokenNameTakenError,
} from '../use-cases/api-tokens.js';
import { InputError } from './payloads.js';

/**
 * `program-enrollments tokens …`: the partner tokens of the HTTP API (docs/contract.md "Who may do what"),
 * in the service's database: DATABASE_URL, or with it unset the zero-setup database under DATA_DIR
 * (default .data), found running or started for the command.
 */

const EXIT_OK = 0;
const EXIT_FAILED = 1;

const say = (line: string) => process.stderr.write(`${line}\n`);
const print = (line: string) => process.stdout.write(`${line}\n`);

async function withTokenDatabase<T>(use: (sql: ReturnType<typeof connectDatabase>['sql']) => Promise<T>): Promise<T> {
  const fromEnv = process.env.DATABASE_URL;
  const zeroSetup = fromEnv ? null : await zeroSetupDatabase(process.env.DATA_DIR || '.data', say);
  if (zeroSetup?.started)
    say(`started the zero-setup Postgres under ${process.env.DATA_DIR || '.data'} for this command`);
  try {
    const url = fromEnv ?? zeroSetup!.url;
    // A database the service has not started on yet (or an older one) gets the tables first.
    await runMigrations(url);
    const database = connectDatabase(url, { max: 1 });
    try {
      return await use(database.sql);
    } finally {
      await database.close();
    }
  } finally {
    await zeroSetup?.stop();
  }
}

function tokenJson(t: StoredApiToken) {
  return {
    name: t.name,
    organizations: t.organizations,
    permission: t.permission,
    created: t.createdAt,
    last_used: t.lastUsedAt,
    revoked: t.revokedAt,
  };
}

/** A plain table, one token per line, never the token itself (only its digest is stored). */
function tokenTable(tokens: readonly StoredApiToken[]): string[] {
  const rows = [
    ['NAME', 'ORGANIZATIONS', 'PERMISSION', 'CREATED', 'LAST USED', 'REVOKED'],
    ...tokens.map((t) => [
      t.name,
      t.organizations.join(','),
      t.permission,
      t.createdAt,
      t.lastUsedAt ?? 'never',
      t.revokedAt ?? '-',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

export function registerTokenCommands(
  program: Command,
  act: <A extends unknown[]>(action: (...args: A) => Promise<number>) => (...args: A) => Promise<void>,
): void {
  const tokens = program
    .command('tokens')
    .description(
      "partner tokens of the HTTP API, in the service's database (DATABASE_URL, else the zero-setup one under DATA_DIR)",
    );

  tokens
    .command('create')
    .description('issue a token; prints it alone on stdout, this once (only its hash is kept)')
    .argument('<name>', 'unique among live tokens; uploads record it as requested_by api:<name>')
    .requiredOption('--org <organization_key...>', 'the organizations the token covers (repeatable)')
    .addOption(
      new Option('--permission <permission>', 'read: lists, history, jobs; write: also uploads')
        .choices(TOKEN_PERMISSIONS)
        .makeOptionMandatory(),
    )
    .action(
      act(async (name: string, options: { org: string[]; permission: string }) => {
        const parsed = newApiTokenInput.safeParse({ name, organizations: options.org, permission: options.permission });
        if (!parsed.success) throw new InputError(describeIssues(parsed.error.issues));
        return withTokenDatabase(async (sql) => {
          try {
            const { token, stored } = await issueApiToken(sql, parsed.data);
            print(token);
            say(
              `created token ${stored.name}: ${stored.permission} on ${stored.organizations.join(', ')}; it is shown only this once`,
            );
            return EXIT_OK;
          } catch (err) {
            if (err instanceof TokenNameTakenError) throw new InputError(err.message);
            throw err;
          }
        });
      }),
    );

  tokens
    .command('list')
    .description('every token: name, organizations, permission, created, last used, revoked (never the token)')
    .option('--json', 'print a JSON array')
    .action(
      act(async (options: { json?: boolean }) =>
        withTokenDatabase(async (sql) => {
          const all = await apiTokens(sql);
          if (options.json) print(JSON.stringify(all.map(tokenJson)));
          else if (all.length === 0) say('no tokens');
          else for (const line of tokenTable(all)) print(line);
          return EXIT_OK;
        }),
      ),
    );

  tokens
    .command('revoke')
    .description('revoke the live token of that name: every process refuses it from the next request')
    .argument('<name>')
    .action(
      act(async (name: string) =>
        withTokenDatabase(async (sql) => {
          if (!(await revokeApiTokenNamed(sql, name))) {
            say(`no live token named ${name}`);
            return EXIT_FAILED;
          }
          say(`revoked token ${name}`);
          return EXIT_OK;
        }),
      ),
    );
}
