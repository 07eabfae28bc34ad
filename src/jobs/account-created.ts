import { type AccountCreatedPayload, accountCreatedPayload } from '../contract/payloads.js';
import type { AccountCreatedResult } from '../contract/results.js';
import type { Database } from '../db/client.js';
import { claimResults, findResults, ledgerKeys, storeResults } from '../db/job-ledger.js';
import { learnerId } from '../db/learners.js';
import { type AccountEventLearners, accountCreatedLearners, recordAccounts } from '../use-cases/account-created.js';
import { type JobContext, type JobHandler, stampOf } from './context.js';
import { asRetryable, LockBusyError } from './errors.js';
import { answeringEarlier } from './ledger.js';

/**
 * `account-created`, remembered by its event_id: a replay returns the first result and applies
 * nothing (docs/rules.md rules 9 and 13).
 *
 * The events a process runs at the same moment are applied together, in the statements of one
 * transaction (README "Performance": an event is bound by the cost of each statement and round
 * trip, not by the rows it writes). Each BullMQ job still hands its own event to the batch and
 * gets its own outcome back: its result, its rejection, a busy lock (the job is delayed) or a
 * transient fault (the job is retried), exactly as if it had run alone.
 */
export const accountCreatedJob: JobHandler<AccountCreatedPayload, AccountCreatedResult> = {
  schema: accountCreatedPayload,
  run: (payload, ctx) => batcherOf(ctx).submit(payload, ctx),
};

/** Most events applied in one transaction. */
const MAX_ACCOUNT_EVENTS_A_BATCH = 64;

/**
 * Batches a process runs at once: two, so that one batch's statements run while the other's jobs
 * complete and the next events come in. Each one more splits the events waiting into smaller
 * batches, and every batch costs its round trips whatever its size.
 */
const BATCHES_IN_FLIGHT = 2;

interface Waiting {
  payload: AccountCreatedPayload;
  ctx: JobContext;
  key: string;
  resolve(result: AccountCreatedResult): void;
  reject(err: unknown): void;
}

type Outcome = { ok: true; result: AccountCreatedResult } | { ok: false; err: unknown };

/** One batcher a process (a database pool): the events its workers run at once. */
const batchers = new WeakMap<Database, AccountEventBatcher>();

function batcherOf(ctx: JobContext): AccountEventBatcher {
  let batcher = batchers.get(ctx.database);
  if (!batcher) {
    batcher = new AccountEventBatcher(BATCHES_IN_FLIGHT);
    batchers.set(ctx.database, batcher);
  }
  return batcher;
}

/**
 * Gathers the events handed in while earlier batches run. A batch starts on the next turn of the
 * event loop after its first event when fewer than `inFlight` batches are running (an event alone
 * waits for nobody), else when one of them ends: the events that came in meanwhile go together.
 */
class AccountEventBatcher {
  private waiting: Waiting[] = [];
  private scheduled: NodeJS.Immediate | null = null;
  private running = 0;

  constructor(private readonly inFlight: number) {}

  submit(payload: AccountCreatedPayload, ctx: JobContext): Promise<AccountCreatedResult> {
    return new Promise((resolve, reject) => {
      const key = ledgerKeys.event('account-created', payload.event_id);
      this.waiting.push({ payload, ctx, key, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.waiting.length > 0 && this.running < this.inFlight) this.scheduled ??= setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = null;
    while (this.waiting.length > 0 && this.running < this.inFlight) {
      const batch = this.waiting.splice(0, MAX_ACCOUNT_EVENTS_A_BATCH);
      this.running++;
      runBatch(batch)
        // Every outcome is handed to its job inside; whatever escapes fails the jobs still waiting
        // (a promise settles once: the others keep their outcomes).
        .catch((err) => {
          for (const w of batch) w.reject(err);
        })
        .finally(() => {
          this.running--;
          this.schedule();
        });
    }
  }
}

/**
 * A batch: the earlier results and the events' learners in one round trip; the events that
 * already finished answer with their results; the others are applied in rounds of independent
 * events (`independentRounds`), one after the other.
 */
async function runBatch(batch: Waiting[]): Promise<void> {
  const { sql } = batch[0]!.ctx.database;
  let earlier: Map<string, AccountCreatedResult>;
  let learners: AccountEventLearners[];
  try {
    [earlier, learners] = await Promise.all([
      findResults<AccountCreatedResult>(
        sql,
        batch.map((w) => w.key),
      ),
      accountCreatedLearners(
        sql,
        batch.map((w) => w.payload),
      ),
    ]);
  } catch (err) {
    for (const w of batch) w.reject(err);
    return;
  }
  const events: BatchEvent[] = [];
  for (const [i, w] of batch.entries()) {
    const result = earlier.get(w.key);
    if (result === undefined) events.push({ ...w, ...learners[i]! });
    else answeringEarlier(w.ctx, 1, w.key).then(() => w.resolve(result), w.reject);
  }
  for (const round of independentRounds(events)) await applyRound(round);
}

type BatchEvent = Waiting & AccountEventLearners;

/**
 * Splits the events into rounds in which no two share a ledger key (a duplicate delivery), a
 * user_id, a username (compared as `accounts.username` is) or a learner: applied together, such
 * events are applied one after the other, in any order (`recordAccounts`). An event that conflicts
 * with an earlier one goes to a later round, after it, and so does every later event it conflicts with.
 */
function independentRounds(events: readonly BatchEvent[]): BatchEvent[][] {
  const rounds: BatchEvent[][] = [];
  let rest = events;
  while (rest.length > 0) {
    const round: BatchEvent[] = [];
    const deferred: BatchEvent[] = [];
    const claimed = new Set<string>();
    for (const e of rest) {
      const marks = [
        `key\u0000${e.key}`,
        `user\u0000${e.payload.user_id}`,
        `name\u0000${e.payload.username}`,
        ...e.identities.map((l) => `learner\u0000${learnerId(l)}`),
      ];
      (marks.some((m) => claimed.has(m)) ? deferred : round).push(e);
      for (const m of marks) claimed.add(m);
    }
    rounds.push(round);
    rest = deferred;
  }
  return rounds;
}

/**
 * Takes each event's learner-course locks (all or none an event, every event in one call): an event
 * whose locks are busy is delayed (LockBusyError), the others are applied together; the locks are
 * released before any job hears its outcome.
 */
async function applyRound(round: BatchEvent[]): Promise<void> {
  const { locks } = round[0]!.ctx;
  let outcomes: Outcome[];
  try {
    const { taken, lease } = await locks.acquireEach(round.map((e) => e.pairs));
    const go = round.filter((_, i) => taken[i]);
    let applied: Outcome[];
    try {
      applied = go.length ? await applyTogether(go) : [];
    } finally {
      await lease.release();
    }
    outcomes = [];
    for (const t of taken) outcomes.push(t ? applied.shift()! : { ok: false, err: new LockBusyError() });
  } catch (err) {
    outcomes = round.map(() => ({ ok: false, err }));
  }
  for (const [i, e] of round.entries()) {
    const outcome = outcomes[i]!;
    if (outcome.ok) e.resolve(outcome.result);
    else e.reject(outcome.err);
  }
}

/**
 * One transaction claims the events' ledger keys, applies the events not finished by another run
 * (`recordAccounts`) and stores their results, each taking its own place in `commit_order`
 * (docs/rules.md rule 13, as `runOnce` does for one job). When it fails for any reason but a
 * transient fault (which every job of the batch retries), each event is applied on its own, so
 * that one event that cannot be applied (a username another account holds) fails alone.
 */
async function applyTogether(events: BatchEvent[]): Promise<Outcome[]> {
  const { sql } = events[0]!.ctx.database;
  const log =
    events.length === 1 ? events[0]!.ctx.log : events[0]!.ctx.log.child({ batch: events.map((e) => e.ctx.jobId) });
  events[0]!.ctx.metrics.accountEventBatch.observe(events.length);
  try {
    const results = (await sql.begin(async (tx) => {
      const earlier = await claimResults<AccountCreatedResult>(
        tx,
        events.map((e) => e.key),
      );
      const fresh = events.filter((e) => !earlier.has(e.key));
      if (fresh.length === 0) return events.map((e) => earlier.get(e.key)!);
      const applied = await recordAccounts(
        tx,
        fresh.map((e) => ({ payload: e.payload, identities: e.identities, stamp: stampOf(e.ctx), log: e.ctx.log })),
        log,
      );
      const stored = await storeResults(
        tx,
        fresh.map((e, i) => ({ key: e.key, result: applied[i]! })),
      );
      const resultOf = new Map(fresh.map((e, i) => [e.key, stored[i]!]));
      return events.map((e) => earlier.get(e.key) ?? resultOf.get(e.key)!);
    })) as AccountCreatedResult[];
    return results.map((result) => ({ ok: true, result }));
  } catch (err) {
    if (events.length === 1 || asRetryable(err)) return events.map(() => ({ ok: false, err }));
    log.info({ err: (err as Error).message }, 'a batch of account events failed; applying them one by one');
    const outcomes: Outcome[] = [];
    for (const e of events) outcomes.push(...(await applyTogether([e])));
    return outcomes;
  }
}
