import type { HandlerRegistry } from '../queue/workers.js';
import { upsertProgramJob } from './upsert-program.js';

/** Every job name of CONTRACT.md and its handler. */
export const handlers: HandlerRegistry = {
  'upsert-program': upsertProgramJob,
};
