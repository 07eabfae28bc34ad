import { type ExpireWaitingEnrollmentsPayload, expireWaitingEnrollmentsPayload } from '../contract/payloads.js';
import type { ExpiryResult } from '../contract/results.js';
import { expireWaitingEnrollments } from '../use-cases/expire-waiting-enrollments.js';
import type { JobHandler } from './context.js';
import { runOnce } from './ledger.js';

export const expireWaitingEnrollmentsJob: JobHandler<ExpireWaitingEnrollmentsPayload, ExpiryResult> = {
  schema: expireWaitingEnrollmentsPayload,
  run: (payload, ctx) =>
    runOnce(ctx, {
      apply: (tx) => expireWaitingEnrollments(tx, payload, ctx.config.EVENT_BUS_RETENTION_DAYS, ctx.log),
    }),
};
