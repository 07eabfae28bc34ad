import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { Job } from 'bullmq';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { describeProgress, describeResult, progressView } from './cli/output.js';
import {
  checkPayload,
  courseEnrollmentsFromCsv,
  courseEnrollmentsPayload,
  InputError,
  linkPayload,
  programEnrollmentsFromCsv,
  programEnrollmentsPayload,
  type WriteAction,
} from './cli/payloads.js';
import {
  addJob,
  findJobs,
  JobVanishedError,
  openQueues,
  type QueueClient,
  readProgress,
  snapshot,
  waitForJob,
} from './cli/queue-client.js';
import { registerTokenCommands } from './cli/tokens.js';
import {
  expireWaitingEnrollmentsPayload,
  retireLearnerPayload,
  upsertProgramPayload,
  writeActions,
} from './contract/payloads.js';
import { resultCsv } from './http/job-status.js';
import { QUEUE_NAMES, type QueueName } from './queue/queues.js';

/**
 * `program-enrollments <command>`: adds the jobs of docs/contract.md to the service's queues with plain
 * BullMQ, as the Registrar does, and follows them to their result.
 *
 * Output: results on stdout (or one JSON object with --json, of one shape per command); narration,
 * progress and errors on stderr. Exit codes (README "Command line"): 0 done, 1 the job failed (or
 * a write's code is 422, or a link failed, or the job is unknown), 2 bad input (nothing was added),
 * 3 a write's code is 207 (some learners' records were not applied), 124 --timeout passed (the job
 * goes on), 130 interrupted while waiting (the job goes on).
 */

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_PARTIAL = 3;
const EXIT_TIMEOUT = 124;
const EXIT_INTERRUPTED = 130;

interface FollowOptions {
  jobId?: string;
  wait: boolean;
  json?: boolean;
  /** Seconds to wait for the job before giving up (the job goes on). */
  timeout?: number;
  /** Where to write the per-learner results as CSV (the write commands). */
  results?: string;
}

/** The write jobs' aggregate code as an exit code (docs/contract.md "Result of both write jobs"). */
function writeExitCode(result: unknown): number {
  const code = (result as { code?: unknown } | null)?.code;
  if (code === 422) return EXIT_FAILED;
  if (code === 207) return EXIT_PARTIAL;
  return EXIT_OK;
}

const WRITE_JOBS = new Set(['write-program-enrollments', 'write-program-course-enrollments']);

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;
const say = (line: string) => process.stderr.write(`${line}\n`);
const print = (line: string) => process.stdout.write(`${line}\n`);

/** The one --json shape of every job command, and of each job `status --json` lists. */
function jobJson(queue: QueueName, job: Job, state: string) {
  return {
    job_id: job.id,
    queue,
    name: job.name,
    state,
    progress: readProgress(job.progress) ?? null,
    result: state === 'completed' ? job.returnvalue : null,
    failed_reason: state === 'failed' ? job.failedReason : null,
  };
}

async function withQueues<T>(use: (client: QueueClient) => Promise<T>): Promise<T> {
  const client = await openQueues(process.env);
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

/** Adds one job and, unless --no-wait, follows it to the end. Returns the exit code. */
async function submit(
  queue: QueueName,
  name: string,
  payload: unknown,
  options: FollowOptions,
  context: { what?: string; links?: number } = {},
): Promise<number> {
  return withQueues(async (client) => {
    const { job, existed } = await addJob(client.queues[queue], name, payload, options.jobId);
    const id = String(job.id);
    say(
      existed
        ? `job ${id} already exists in queue ${queue}: following it instead of adding another`
        : `added job ${id} to queue ${queue} (${name}${context.what ? `, ${context.what}` : ''})`,
    );
    // A job nobody consumes waits for ever: say so at once (a wrong QUEUE_PREFIX, a stopped service).
    const workers = await client.queues[queue].getWorkersCount().catch(() => undefined);
    if (workers === 0) {
      say(
        `warning: no worker is consuming queue ${queue} under prefix ${client.prefix}: is the service running, with QUEUE_PREFIX=${client.prefix}? The job waits until one does.`,
      );
    }
    const printCurrent = async () => {
      const now = await snapshot(client.queues[queue], id);
      print(JSON.stringify(now ? jobJson(queue, now.job, now.state) : { ...jobJson(queue, job, 'unknown') }));
    };
    if (!options.wait) {
      if (options.json) await printCurrent();
      else print(id);
      say(`follow it with: program-enrollments status ${id}`);
      return EXIT_OK;
    }

    const view = progressView(process.stderr);
    const stop = new AbortController();
    const onSigint = () => stop.abort(new Error('interrupted'));
    process.once('SIGINT', onSigint);
    const timer =
      options.timeout === undefined
        ? undefined
        : setTimeout(() => stop.abort(new Error('timeout')), options.timeout * 1000).unref();
    let finished: Awaited<ReturnType<typeof waitForJob>>;
    try {
      finished = await waitForJob(client.queues[queue], id, (p) => view.update(p), { signal: stop.signal });
    } catch (err) {
      if (stop.signal.aborted) {
        view.stop();
        if (options.json) await printCurrent();
        const timedOut = (stop.signal.reason as Error).message === 'timeout';
        say(
          timedOut
            ? `job ${id} did not finish within ${options.timeout} s${workers === 0 ? ' (no worker consumes the queue)' : ''}; it goes on: program-enrollments status ${id}`
            : `stopped waiting; job ${id} goes on: program-enrollments status ${id}`,
        );
        return timedOut ? EXIT_TIMEOUT : EXIT_INTERRUPTED;
      }
      if (err instanceof JobVanishedError) {
        say(err.message);
        if (options.json) print(JSON.stringify(jobJson(queue, job, 'unknown')));
        return EXIT_FAILED;
      }
      throw err;
    } finally {
      view.stop();
      clearTimeout(timer);
      process.removeListener('SIGINT', onSigint);
    }

    if (options.json) print(JSON.stringify(jobJson(queue, finished.job, finished.state)));
    if (finished.state === 'failed') {
      say(`job ${id} failed: ${finished.job.failedReason}`);
      return EXIT_FAILED;
    }
    if (!options.json) {
      print(`job ${id} completed`);
      for (const line of describeResult(name, finished.job.returnvalue, context)) print(line);
    }
    if (options.results !== undefined) {
      const csv = resultCsv(finished.job.returnvalue);
      if (csv !== null) {
        await writeFile(options.results, csv);
        say(`wrote the per-learner results to ${options.results}`);
      }
    }
    // A link that did not hold is the command not doing what was asked; scripts should notice.
    if (name === 'link-program-enrollments') {
      const errors = (finished.job.returnvalue as { errors?: Record<string, string> } | null)?.errors ?? {};
      if (Object.keys(errors).length > 0) return EXIT_FAILED;
    }
    if (WRITE_JOBS.has(name)) return writeExitCode(finished.job.returnvalue);
    return EXIT_OK;
  });
}

/** A file, or stdin for `-` (e.g. `docker compose exec -T app … enroll <uuid> - < file.csv`). */
async function readInput(file: string): Promise<string> {
  try {
    if (file === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    }
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

const nonNegativeNumber = (value: string): number => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('must be a non-negative number of days');
  return n;
};

const positiveNumber = (value: string): number => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
};

const positiveInteger = (value: string): number => {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) throw new InvalidArgumentError('must be a positive integer');
  return Number(value);
};

/** BullMQ refuses ids with a colon (its key separator) and digits-only ids (its own numbering). */
const jobIdOption = (value: string): string => {
  if (value.includes(':')) throw new InvalidArgumentError('must not contain ":"');
  if (/^\d+$/.test(value)) throw new InvalidArgumentError('must not be only digits');
  if (value.trim() === '') throw new InvalidArgumentError('must not be empty');
  return value;
};

/** --job-id, --no-wait, --timeout and --json, shared by every command that adds a job. */
function followOptions(command: Command): Command {
  return command
    .option(
      '--job-id <id>',
      'BullMQ jobId: adding the same id again applies nothing and returns the first result',
      jobIdOption,
    )
    .option('--no-wait', 'add the job, print its id and exit')
    .option('--timeout <seconds>', 'stop waiting after this long and exit 124 (the job goes on)', positiveNumber)
    .option('--json', 'print one JSON object (job_id, queue, name, state, progress, result, failed_reason) on stdout');
}

function writeOptions(command: Command): Command {
  return followOptions(
    command
      .option('--results <file>', 'write the per-learner results to this CSV file (student_key,status)')
      .addOption(
        new Option('--action <action>', 'how existing enrollments are treated')
          .choices(writeActions)
          .default('create_or_update'),
      )
      .option('--requested-by <who>', 'recorded in the history rows, e.g. registrar:jdoe'),
  );
}

type WriteCliOptions = FollowOptions & { action: WriteAction; requestedBy?: string };

function printStatus(found: Awaited<ReturnType<typeof findJobs>>[number]): void {
  const { queue, job, state } = found;
  const rows: Array<[string, string]> = [
    ['queue', queue],
    ['job', String(job.id)],
    ['name', job.name],
    ['state', state],
    ['progress', describeProgress(readProgress(job.progress))],
    ['created', new Date(job.timestamp).toISOString()],
  ];
  if (job.finishedOn) rows.push(['finished', new Date(job.finishedOn).toISOString()]);
  if (state === 'failed' || (job.failedReason && state !== 'completed')) rows.push(['failed', job.failedReason]);
  for (const [label, value] of rows) print(`${`${label}:`.padEnd(10)}${value}`);
  if (state === 'completed') {
    const [first, ...rest] = describeResult(job.name, job.returnvalue);
    print(`${'result:'.padEnd(10)}${first ?? ''}`);
    for (const line of rest) print(line);
  }
}

/** Every action returns its exit code through `act`, since commander drops action results. */
export function buildProgram(setExitCode: (code: number) => void): Command {
  const act =
    <A extends unknown[]>(action: (...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      setExitCode(await action(...args));
    };
  const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
    .version;
  const program = new Command('program-enrollments')
    .description(
      "Adds program-enrollments jobs to the service's queues and follows them.\nReads REDIS_URL (required) and QUEUE_PREFIX (default bull); `tokens` reads DATABASE_URL instead.",
    )
    .version(version)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();

  writeOptions(
    program
      .command('enroll')
      .description('write-program-enrollments from a CSV with the header student_key,status[,curriculum_uuid]')
      .argument('<program_uuid>')
      .argument('<file.csv>', 'a CSV file, or - for stdin'),
  ).action(
    act(async (programUuid: string, file: string, options: WriteCliOptions) => {
      const { records, lines } = programEnrollmentsFromCsv(await readInput(file));
      const payload = programEnrollmentsPayload({
        programUuid,
        action: options.action,
        records,
        requestedBy: options.requestedBy,
        lines,
      });
      return submit('enrollments', 'write-program-enrollments', payload, options, {
        what: plural(records.length, 'record'),
      });
    }),
  );

  writeOptions(
    program
      .command('enroll-course')
      .description('write-program-course-enrollments from a CSV with the header student_key,status[,course_staff]')
      .argument('<program_uuid>')
      .argument('<course_key>', 'the course key or its external key')
      .argument('<file.csv>', 'a CSV file, or - for stdin'),
  ).action(
    act(async (programUuid: string, courseKey: string, file: string, options: WriteCliOptions) => {
      const { records, lines } = courseEnrollmentsFromCsv(await readInput(file));
      const payload = courseEnrollmentsPayload({
        programUuid,
        courseKey,
        action: options.action,
        records,
        requestedBy: options.requestedBy,
        lines,
      });
      return submit('enrollments', 'write-program-course-enrollments', payload, options, {
        what: plural(records.length, 'record'),
      });
    }),
  );

  followOptions(
    program
      .command('link')
      .description('link-program-enrollments: link waiting enrollments to LMS accounts (exit 1 when a link fails)')
      .argument('<program_uuid>')
      .argument('<key:username...>', 'external user key and LMS username, e.g. abc1:jdoe'),
  ).action(
    act(async (programUuid: string, items: string[], options: FollowOptions) => {
      const payload = linkPayload(programUuid, items);
      return submit('enrollments', 'link-program-enrollments', payload, options, {
        what: plural(items.length, 'link'),
        links: items.length,
      });
    }),
  );

  followOptions(
    program
      .command('expire')
      .description('expire-waiting-enrollments: delete waiting enrollments not modified for N days')
      .option('--days <n>', 'expiration days (the service defaults to 60)', nonNegativeNumber),
  ).action(
    act(async (options: FollowOptions & { days?: number }) => {
      const payload = options.days === undefined ? {} : { expiration_days: options.days };
      checkPayload(expireWaitingEnrollmentsPayload, payload);
      return submit('enrollments', 'expire-waiting-enrollments', payload, options);
    }),
  );

  followOptions(
    program
      .command('retire')
      .description("retire-learner: replace the account's student keys with retired ones")
      .argument('<user_id>', 'LMS user id', positiveInteger),
  ).action(
    act(async (userId: number, options: FollowOptions) => {
      const payload = { user_id: userId };
      checkPayload(retireLearnerPayload, payload);
      return submit('enrollments', 'retire-learner', payload, options);
    }),
  );

  followOptions(
    program
      .command('upsert-program')
      .description("upsert-program: load or replace a program's catalog entry from a JSON file")
      .argument('<file.json>', 'a JSON file, or - for stdin'),
  ).action(
    act(async (file: string, options: FollowOptions) => {
      let payload: unknown;
      try {
        payload = JSON.parse(await readInput(file));
      } catch (err) {
        if (err instanceof InputError) throw err;
        throw new InputError(`${file} is not JSON: ${err instanceof Error ? err.message : String(err)}`);
      }
      checkPayload(upsertProgramPayload, payload);
      return submit('enrollments', 'upsert-program', payload, options);
    }),
  );

  program
    .command('status')
    .description("a job's name, state, progress and result or failed reason (searched in both queues)")
    .argument('<job_id>')
    .addOption(new Option('--queue <name>', 'look in one queue only').choices(QUEUE_NAMES))
    .option('--json', 'print one JSON object { job_id, jobs: [...] } (a job id may name a job in each queue)')
    .action(
      act(async (id: string, options: { queue?: QueueName; json?: boolean }) =>
        withQueues(async (client) => {
          const found = await findJobs(client, id, options.queue);
          if (options.json)
            print(JSON.stringify({ job_id: id, jobs: found.map((f) => jobJson(f.queue, f.job, f.state)) }));
          if (found.length === 0) {
            say(
              `no job ${id} in queue${options.queue ? ` ${options.queue}` : `s ${QUEUE_NAMES.join(', ')}`} (prefix ${client.prefix})`,
            );
            return EXIT_FAILED;
          }
          if (!options.json) {
            found.forEach((f, i) => {
              if (i > 0) print('');
              printStatus(f);
            });
          }
          return EXIT_OK;
        }),
      ),
    );

  registerTokenCommands(program, act);
  return program;
}

/** Runs the CLI on `argv` and returns the exit code; every error is reported here, once. */
export async function runCli(argv: readonly string[]): Promise<number> {
  let code: number = EXIT_OK;
  const program = buildProgram((c) => (code = c));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has printed its message (or the help) already.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (err instanceof InputError) {
      say(`error: ${err.message}`);
      return EXIT_USAGE;
    }
    say(`error: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILED;
  }
}

process.exitCode = await runCli(process.argv.slice(2));
