/**
 * `npm run schemas`: writes the JSON Schemas (draft 2020-12) of every producer job's payload and
 * result into `schemas/`, from the zod schemas the workers and the typed client use. Payloads are
 * described as a producer may send them (zod's input side: before trimming and defaults, unknown
 * fields allowed, as docs/contract.md "Payload errors" says); results as the service answers them.
 * `test/json-schemas.test.ts` fails when the committed files differ from what this prints.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { JOBS, type WireJobName } from '../src/contract/catalog.js';

export const SCHEMAS_DIR = path.resolve(import.meta.dirname, '../schemas');

const toJson = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

const titled = (title: string, { $schema, ...rest }: Record<string, unknown>) => ({ $schema, title, ...rest });

/** File name → contents of every file of `schemas/`. */
export function renderSchemas(): Record<string, string> {
  const files: Record<string, string> = {};
  const index: Record<string, { queue: string; payload: string; result: string }> = {};
  for (const [name, spec] of Object.entries(JOBS) as Array<[WireJobName, (typeof JOBS)[WireJobName]]>) {
    if (!spec.public) continue;
    const payloadFile = `${name}.payload.schema.json`;
    const resultFile = `${name}.result.schema.json`;
    files[payloadFile] = toJson(
      titled(
        `${name} payload (queue ${spec.queue})`,
        z.toJSONSchema(spec.payload, { target: 'draft-2020-12', io: 'input' }),
      ),
    );
    files[resultFile] = toJson(
      titled(`${name} result`, z.toJSONSchema(spec.result, { target: 'draft-2020-12', io: 'output' })),
    );
    index[name] = { queue: spec.queue, payload: payloadFile, result: resultFile };
  }
  files['index.json'] = toJson(index);
  return files;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const files = renderSchemas();
  mkdirSync(SCHEMAS_DIR, { recursive: true });
  for (const stale of readdirSync(SCHEMAS_DIR)) if (!(stale in files)) rmSync(path.join(SCHEMAS_DIR, stale));
  for (const [file, text] of Object.entries(files)) writeFileSync(path.join(SCHEMAS_DIR, file), text);
  console.log(`wrote ${Object.keys(files).length} files to ${path.relative(process.cwd(), SCHEMAS_DIR)}/`);
}
