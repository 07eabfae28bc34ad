/**
 * The JSON Schemas of `schemas/` (draft 2020-12): what `npm run schemas` writes from the zod
 * schemas, and what a producer in another language validates against (docs/contract.md samples).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { renderSchemas, SCHEMAS_DIR } from '../scripts/json-schemas.js';
import { JOBS, type WireJobName } from '../src/contract/catalog.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const ajv = addFormats(new Ajv2020({ strict: true, allErrors: true }));
const read = (file: string) => JSON.parse(readFileSync(path.join(SCHEMAS_DIR, file), 'utf8')) as object;
const validator = (file: string) => ajv.compile(read(file));

const PROGRAM = '00000000-1111-2222-3333-444444444444';
const CURRICULUM = 'aaaaaaaa-1111-2222-3333-444444444444';

/** The payload examples of docs/contract.md, and one wrong payload per job. */
const samples: Record<
  Exclude<WireJobName, 'write-program-course-enrollments-upload'>,
  { ok: unknown[]; bad: unknown[] }
> = {
  'upsert-program': {
    ok: [
      {
        program_uuid: PROGRAM,
        program_key: 'masters-in-cs',
        organization_key: 'UoX',
        curricula: [{ curriculum_uuid: CURRICULUM, is_active: true, course_keys: ['course-v1:UoX+CS101+2026'] }],
        courses: [
          { course_key: 'course-v1:UoX+CS101+2026', external_course_key: 'CS101-F26', modes: ['audit', 'masters'] },
        ],
      },
    ],
    bad: [{ program_uuid: PROGRAM, organization_key: 'UoX' }],
  },
  'write-program-enrollments': {
    ok: [
      {
        program_uuid: PROGRAM,
        action: 'create_or_update',
        enrollments: [{ student_key: 'abc1', status: 'enrolled', curriculum_uuid: CURRICULUM }],
        requested_by: 'registrar:jdoe',
        an_unknown_field: 'is ignored',
      },
    ],
    bad: [
      { program_uuid: PROGRAM, action: 'upsert', enrollments: [] },
      { program_uuid: 'not-a-uuid', action: 'create', enrollments: [] },
      { program_uuid: PROGRAM, action: 'create', enrollments: [{ student_key: '', status: 'enrolled' }] },
    ],
  },
  'write-program-course-enrollments': {
    ok: [
      {
        program_uuid: PROGRAM,
        course_key: 'course-v1:UoX+CS101+2026',
        action: 'create_or_update',
        enrollments: [{ student_key: 'abc1', status: 'active', course_staff: true }],
        requested_by: 'registrar:jdoe',
      },
    ],
    bad: [{ program_uuid: PROGRAM, action: 'create', enrollments: [] }],
  },
  'link-program-enrollments': {
    ok: [{ program_uuid: PROGRAM, links: [{ student_key: 'abc1', username: 'jdoe' }] }],
    bad: [{ program_uuid: PROGRAM, links: [{ student_key: 'abc1' }] }],
  },
  'expire-waiting-enrollments': {
    ok: [{}, { expiration_days: 60 }, { expiration_days: 0.5 }],
    bad: [{ expiration_days: -1 }],
  },
  'retire-learner': { ok: [{ user_id: 42 }], bad: [{ user_id: '42' }, { user_id: 0 }, { user_id: 1.5 }] },
  'account-created': {
    ok: [
      {
        event_id: '3f1c8f1e-5a70-4a4e-9a55-0c2b4b1b2f10',
        user_id: 42,
        username: 'jdoe',
        email: 'jdoe@example.org',
        identities: [{ organization_key: 'UoX', external_user_key: 'learner1a' }],
      },
      { event_id: 'e', user_id: 42, username: 'jdoe', identities: [] },
    ],
    bad: [{ event_id: 'e', user_id: 42, identities: [] }],
  },
  'course-enrollment-changed': {
    ok: [{ event_id: 'e', user_id: 42, course_key: 'course-v1:UoX+CS101+2026', mode: 'verified', is_active: true }],
    bad: [{ event_id: 'e', user_id: 42, course_key: 'course-v1:UoX+CS101+2026', mode: 'verified', is_active: 'yes' }],
  },
};

/** The result examples of docs/contract.md. */
const results: Record<keyof typeof samples, unknown> = {
  'upsert-program': { program_uuid: PROGRAM },
  'write-program-enrollments': {
    code: 207,
    results: { abc1: 'enrolled', abc2: 'conflict' },
    counts: { enrolled: 1, conflict: 1 },
  },
  'write-program-course-enrollments': { code: 204, results: {}, counts: {} },
  'link-program-enrollments': { errors: { abc1: 'no user with username jdoe' } },
  'expire-waiting-enrollments': { removed: { program_enrollments: 3, program_course_enrollments: 5 } },
  'retire-learner': { retired: 1 },
  'account-created': { linked: [{ program_uuid: PROGRAM, student_key: 'abc1', course_keys: [] }] },
  'course-enrollment-changed': { course_key: 'course-v1:UoX+CS101+2026', mode: 'verified', is_active: true },
};

describe('JSON Schemas of the payloads and results', () => {
  it('are what `npm run schemas` writes (run it after changing a zod schema)', () => {
    const expected = renderSchemas();
    expect(readdirSync(SCHEMAS_DIR).sort()).toEqual(Object.keys(expected).sort());
    for (const [file, text] of Object.entries(expected)) {
      expect(readFileSync(path.join(SCHEMAS_DIR, file), 'utf8'), `schemas/${file} is stale`).toBe(text);
    }
  });

  it('cover every job a producer adds, with its queue', () => {
    const index = read('index.json') as Record<string, { queue: string }>;
    expect(Object.keys(index).sort()).toEqual(Object.keys(samples).sort());
    for (const [name, entry] of Object.entries(index)) expect(entry.queue).toBe(JOBS[name as WireJobName].queue);
  });

  for (const [name, { ok, bad }] of Object.entries(samples)) {
    it(`${name}: the contract's payloads validate, wrong ones do not, and the workers' schema agrees`, () => {
      const validate = validator(`${name}.payload.schema.json`);
      const zod = JOBS[name as WireJobName].payload;
      for (const payload of ok) {
        expect(validate(payload), JSON.stringify(validate.errors)).toBe(true);
        expect(zod.safeParse(payload).success).toBe(true);
      }
      for (const payload of bad) {
        expect(validate(payload), JSON.stringify(payload)).toBe(false);
        expect(zod.safeParse(payload).success).toBe(false);
      }
      const validateResult = validator(`${name}.result.schema.json`);
      const result = results[name as keyof typeof samples];
      expect(validateResult(result), JSON.stringify(validateResult.errors)).toBe(true);
      expect(validateResult({ ...(result as object), unexpected: true })).toBe(false);
    });
  }
});
