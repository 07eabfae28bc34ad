import { type LinkProgramEnrollmentsPayload, linkProgramEnrollmentsPayload } from '../contract/payloads.js';
import type { LinkResult } from '../contract/results.js';
import { storeResult } from '../db/job-ledger.js';
import { linksWrite } from '../use-cases/link-program-enrollments.js';
import { requireProgram } from '../use-cases/programs.js';
import { runChunks } from './chunked.js';
import { type JobHandler, stampOf } from './context.js';
import { earlierResult } from './ledger.js';

export const linkProgramEnrollmentsJob: JobHandler<LinkProgramEnrollmentsPayload, LinkResult> = {
  schema: linkProgramEnrollmentsPayload,
  async run(payload, ctx) {
    const { sql } = ctx.database;
    const earlier = await earlierResult<LinkResult>(ctx, payload.links.length);
    if (earlier) return earlier;
    const program = await requireProgram(sql, payload.program_uuid);
    const errors = await runChunks(ctx, await linksWrite(sql, program, payload, stampOf(ctx), ctx.log));
    return sql.begin((tx) => storeResult(tx, ctx.key, { errors }));
  },
};
