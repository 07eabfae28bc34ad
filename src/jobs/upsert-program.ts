import { upsertProgram } from '../db/programs.js';
import { type UpsertProgramPayload, upsertProgramPayload } from '../contract/payloads.js';
import type { JobHandler } from './context.js';

export const upsertProgramJob: JobHandler<UpsertProgramPayload, { program_uuid: string }> = {
  schema: upsertProgramPayload,
  async run(payload, ctx) {
    await upsertProgram(ctx.database.sql, payload);
    ctx.log.info({ program: payload.program_uuid, curricula: payload.curricula.length }, 'program upserted');
    return { program_uuid: payload.program_uuid };
  },
};
