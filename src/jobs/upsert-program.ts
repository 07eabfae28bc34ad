import { type UpsertProgramPayload, upsertProgramPayload } from '../contract/payloads.js';
import type { UpsertProgramResult } from '../contract/results.js';
import { upsertProgram } from '../use-cases/programs.js';
import type { JobHandler } from './context.js';

/** `upsert-program`: replacing a catalog entry with the same one changes nothing, so it needs no ledger. */
export const upsertProgramJob: JobHandler<UpsertProgramPayload, UpsertProgramResult> = {
  schema: upsertProgramPayload,
  async run(payload, ctx) {
    await upsertProgram(ctx.database.sql, payload);
    ctx.log.info({ program: payload.program_uuid, curricula: payload.curricula.length }, 'program upserted');
    return { program_uuid: payload.program_uuid };
  },
};
