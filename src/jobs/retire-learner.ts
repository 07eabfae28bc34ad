import { type RetireLearnerPayload, retireLearnerPayload } from '../contract/payloads.js';
import type { RetireResult } from '../contract/results.js';
import { retireLearner } from '../use-cases/retire-learner.js';
import { type JobHandler, stampOf } from './context.js';
import { runOnce } from './ledger.js';

export const retireLearnerJob: JobHandler<RetireLearnerPayload, RetireResult> = {
  schema: retireLearnerPayload,
  run: (payload, ctx) =>
    runOnce(ctx, {
      apply: (tx) => retireLearner(tx, payload, ctx.config.RETIREMENT_SALT, stampOf(ctx), ctx.log),
    }),
};
