import { type WriteProgramEnrollmentsPayload, writeProgramEnrollmentsPayload } from '../contract/payloads.js';
import type { WriteResult } from '../domain/write-results.js';
import { requireProgram } from '../use-cases/programs.js';
import { programEnrollmentsWrite } from '../use-cases/write-program-enrollments.js';
import { runChunkedWrite } from './chunked.js';
import { type JobHandler, stampOf } from './context.js';
import { earlierResult } from './ledger.js';

export const writeProgramEnrollmentsJob: JobHandler<WriteProgramEnrollmentsPayload, WriteResult> = {
  schema: writeProgramEnrollmentsPayload,
  async run(payload, ctx) {
    const { sql } = ctx.database;
    const earlier = await earlierResult<WriteResult>(ctx, payload.enrollments.length);
    if (earlier) return earlier;
    const program = await requireProgram(sql, payload.program_uuid);
    const stamp = stampOf(ctx, payload.requested_by);
    const work = await programEnrollmentsWrite(sql, program, payload, stamp, ctx.log);
    return runChunkedWrite(ctx, 'write-program-enrollments', work);
  },
};
