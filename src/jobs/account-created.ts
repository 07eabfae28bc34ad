import { type AccountCreatedPayload, accountCreatedPayload } from '../contract/payloads.js';
import type { AccountCreatedResult } from '../contract/results.js';
import { ledgerKeys } from '../db/job-ledger.js';
import type { SentLearner } from '../db/learners.js';
import { accountCreatedLearners, recordAccount } from '../use-cases/account-created.js';
import { type JobHandler, stampOf } from './context.js';
import { runOnce } from './ledger.js';

/** `account-created`, remembered by its event_id: a replay returns the first result and applies nothing. */
export const accountCreatedJob: JobHandler<AccountCreatedPayload, AccountCreatedResult> = {
  schema: accountCreatedPayload,
  async run(payload, ctx) {
    let identities: SentLearner[] = [];
    return runOnce(ctx, {
      key: ledgerKeys.event('account-created', payload.event_id),
      lockPairs: async () => {
        const learners = await accountCreatedLearners(ctx.database.sql, payload);
        identities = learners.identities;
        return learners.pairs;
      },
      apply: (tx) => recordAccount(tx, payload, identities, stampOf(ctx), ctx.log),
    });
  },
};
