/**
 * Property-based tests (fast-check) of docs/contract.md "Limits", "Payload errors" and "Bad
 * requests": hostile payloads for every job name and hostile HTTP paths.
 *  - Through the schemas the worker applies, at least 2,000 generated payloads per job name: each
 *    is refused, naming the field, with a reason of at most 100 problems and 64 KiB.
 *  - Through the real service, a sample of them: each job fails at its first attempt with
 *    `invalid payload:`, nothing is written, and `/healthz` keeps answering.
 *  - Hostile path parameters never answer 500.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type JobName, QUEUES, type QueueName } from '../../src/contract/jobs.js';
import { codePointLength, describeIssues, MAX_FAILED_REASON_BYTES } from '../../src/contract/payloads.js';
import { handlers } from '../../src/jobs/index.js';
import { tableCounts, useProgram } from '../support/fixtures.js';
import { useTestService } from '../support/service.js';

const SCHEMA_RUNS_PER_JOB = 2_000;
const SERVICE_RUNS_PER_JOB = 12;

// ---------------------------------------------------------------------------------------------
// Hostile strings, each invalid for the kind of field it is put in.

type FieldKind = { kind: 'key'; max: number } | { kind: 'limited'; max: number } | { kind: 'text' };

const anyText = fc.string({ maxLength: 20 });
const loneSurrogate = fc.tuple(anyText, fc.integer({ min: 0xd800, max: 0xdfff }), anyText).map(([a, s, b]) => {
  // Not followed by a low surrogate, nor preceded by a high one, whatever a and b hold.
  const unit = String.fromCharCode(s);
  return s <= 0xdbff ? `${a}${unit}x${b}` : `${a}x${unit}${b}`;
});
const withNul = fc.tuple(anyText, anyText).map(([a, b]) => `${a}\u0000${b}`);
const invisible = fc
  .array(
    fc.constantFrom(
      ' ',
      '\t',
      '\n',
      '\u00a0',
      '\u200b',
      '\u200c',
      '\u200d',
      '\u2060',
      '\ufeff',
      '\u3164',
      '\u00ad',
      '\u180e',
      '\u2028',
    ),
    {
      minLength: 1,
      maxLength: 12,
    },
  )
  .map((cs) => cs.join(''));
const overLimit = (max: number) =>
  fc
    .tuple(fc.integer({ min: max + 1, max: max + 300 }), fc.constantFrom('a', 'é', '🎓', '中', 'ß'))
    .map(([n, c]) => `k${c.repeat(n - 1)}`);

function hostileFor(field: FieldKind): fc.Arbitrary<string> {
  const always = [loneSurrogate, withNul];
  if (field.kind === 'text') return fc.oneof(...always);
  if (field.kind === 'limited') return fc.oneof(...always, overLimit(field.max));
  return fc.oneof(...always, overLimit(field.max), invisible, fc.constant(''));
}

// ---------------------------------------------------------------------------------------------
// A valid payload per job name, and the string fields hostile values go into.

interface JobShape {
  queue: QueueName;
  valid: () => Record<string, unknown>;
  fields: Array<{ path: Array<string | number>; field: FieldKind }>;
  /** Non-string fields and their hostile values. */
  others?: Array<{ path: string[]; values: fc.Arbitrary<unknown> }>;
}

const KEY = { kind: 'key', max: 255 } as const;
const TEXT = { kind: 'text' } as const;
const limited = (max: number) => ({ kind: 'limited', max }) as const;
const uuid = () => randomUUID();

const SHAPES: Record<JobName, JobShape> = {
  'upsert-program': {
    queue: 'enrollments',
    valid: () => ({
      program_uuid: uuid(),
      program_key: 'pk',
      organization_key: 'Org',
      curricula: [{ curriculum_uuid: uuid(), is_active: true, course_keys: ['c1'] }],
      courses: [{ course_key: 'c1', external_course_key: 'C1', modes: ['audit'] }],
    }),
    fields: [
      { path: ['program_key'], field: KEY },
      { path: ['organization_key'], field: KEY },
      { path: ['curricula', 0, 'course_keys', 0], field: KEY },
      { path: ['courses', 0, 'course_key'], field: KEY },
      { path: ['courses', 0, 'external_course_key'], field: KEY },
      { path: ['courses', 0, 'modes', 0], field: { kind: 'key', max: 100 } },
    ],
  },
  'write-program-enrollments': {
    queue: 'enrollments',
    valid: () => ({
      program_uuid: uuid(),
      action: 'create',
      enrollments: [{ student_key: 'k', status: 'enrolled' }],
      requested_by: 'r',
    }),
    fields: [
      { path: ['enrollments', 0, 'student_key'], field: KEY },
      { path: ['enrollments', 0, 'status'], field: TEXT },
      { path: ['requested_by'], field: limited(255) },
    ],
  },
  'write-program-course-enrollments': {
    queue: 'enrollments',
    valid: () => ({
      program_uuid: uuid(),
      course_key: 'c1',
      action: 'create',
      enrollments: [{ student_key: 'k', status: 'active', course_staff: true }],
      requested_by: 'r',
    }),
    fields: [
      { path: ['course_key'], field: KEY },
      { path: ['enrollments', 0, 'student_key'], field: KEY },
      { path: ['enrollments', 0, 'status'], field: TEXT },
      { path: ['requested_by'], field: limited(255) },
    ],
  },
  'write-program-course-enrollments-upload': {
    queue: 'enrollments',
    valid: () => ({
      program_uuid: uuid(),
      enrollments: [{ course_id: 'c1', student_key: 'k', status: 'active' }],
      requested_by: 'api:x',
    }),
    fields: [
      { path: ['enrollments', 0, 'course_id'], field: TEXT },
      { path: ['enrollments', 0, 'student_key'], field: KEY },
      { path: ['enrollments', 0, 'status'], field: TEXT },
      { path: ['requested_by'], field: limited(255) },
    ],
  },
  'link-program-enrollments': {
    queue: 'enrollments',
    valid: () => ({ program_uuid: uuid(), links: [{ student_key: 'k', username: 'u' }] }),
    fields: [
      { path: ['links', 0, 'student_key'], field: KEY },
      { path: ['links', 0, 'username'], field: { kind: 'key', max: 150 } },
    ],
  },
  'expire-waiting-enrollments': {
    queue: 'enrollments',
    valid: () => ({ expiration_days: 60 }),
    fields: [],
    others: [
      {
        path: ['expiration_days'],
        values: fc.oneof(
          fc.double({ max: -Number.MIN_VALUE, noNaN: true }),
          fc.string(),
          fc.boolean(),
          fc.constant(null),
          fc.array(fc.integer()),
          fc.object(),
        ),
      },
    ],
  },
  'retire-learner': {
    queue: 'enrollments',
    valid: () => ({ user_id: 42 }),
    fields: [],
    others: [
      {
        path: ['user_id'],
        values: fc.oneof(
          fc.integer({ max: 0 }),
          fc.double({ noInteger: true, noNaN: true, noDefaultInfinity: true }),
          fc.constant(2 ** 53),
          fc.string(),
          fc.constant(null),
          fc.object(),
        ),
      },
    ],
  },
  'account-created': {
    queue: 'accounts',
    valid: () => ({
      event_id: uuid(),
      user_id: 42,
      username: 'u',
      email: 'u@example.org',
      identities: [{ organization_key: 'Org', external_user_key: 'k' }],
    }),
    fields: [
      { path: ['event_id'], field: limited(255) },
      { path: ['username'], field: limited(150) },
      { path: ['email'], field: limited(254) },
      { path: ['identities', 0, 'organization_key'], field: KEY },
      { path: ['identities', 0, 'external_user_key'], field: KEY },
    ],
  },
  'course-enrollment-changed': {
    queue: 'accounts',
    valid: () => ({ event_id: uuid(), user_id: 42, course_key: 'c1', mode: 'verified', is_active: true }),
    fields: [
      { path: ['event_id'], field: limited(255) },
      { path: ['course_key'], field: KEY },
      { path: ['mode'], field: limited(100) },
    ],
  },
};

function setPath(target: Record<string, unknown>, path: Array<string | number>, value: unknown): void {
  let node: Record<string | number, unknown> = target;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  node[path.at(-1)!] = value;
}

/** A payload of `name` with one to three fields made hostile, and the paths that must be named. */
function hostilePayload(name: JobName): fc.Arbitrary<{ payload: unknown; named: string[] }> {
  const shape = SHAPES[name];
  const edits: fc.Arbitrary<{ path: Array<string | number>; value: unknown }>[] = [
    ...shape.fields.map(({ path, field }) => hostileFor(field).map((value) => ({ path, value }))),
    ...(shape.others ?? []).map(({ path, values }) => values.map((value) => ({ path, value }))),
  ];
  const root = fc
    .oneof(fc.constant(null), fc.integer(), fc.string(), fc.array(fc.anything(), { maxLength: 3 }))
    .map((payload) => ({ payload, named: ['(root)'] }));
  const fieldEdits = fc.array(fc.oneof(...edits), { minLength: 1, maxLength: 3 }).map((chosen) => {
    const payload = shape.valid();
    for (const { path, value } of chosen) setPath(payload, path, value);
    return { payload, named: [...new Set(chosen.map(({ path }) => path.join('.')))] };
  });
  return fc.oneof({ arbitrary: fieldEdits, weight: 9 }, { arbitrary: root, weight: 1 });
}

const JOB_NAMES = Object.values(QUEUES).flat() as JobName[];

describe('hostile payloads against the schemas', () => {
  for (const name of JOB_NAMES) {
    it(`refuses ${SCHEMA_RUNS_PER_JOB} hostile ${name} payloads, naming each field`, () => {
      const schema = handlers[name].schema;
      fc.assert(
        fc.property(hostilePayload(name), ({ payload, named }) => {
          const parsed = schema.safeParse(payload);
          expect(parsed.success).toBe(false);
          if (parsed.success) return;
          const reason = `invalid payload: ${describeIssues(parsed.error.issues)}`;
          expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(MAX_FAILED_REASON_BYTES);
          for (const path of named) {
            if (path === '(root)') expect(reason).toMatch(/^invalid payload: \(root\): /);
            else expect(reason).toContain(`${path}: `);
          }
        }),
        { numRuns: SCHEMA_RUNS_PER_JOB },
      );
    });
  }

  it('lets nothing through that Postgres could refuse: accepted strings are well-formed, NUL-free and within their limits', () => {
    const schema = handlers['account-created'].schema;
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 400 }),
        fc.string({ unit: 'binary', maxLength: 300 }),
        (username, key) => {
          const parsed = schema.safeParse({
            ...SHAPES['account-created'].valid(),
            username,
            identities: [{ organization_key: 'O', external_user_key: key }],
          });
          if (!parsed.success) return;
          for (const value of [parsed.data.username, parsed.data.identities[0]!.external_user_key]) {
            expect(value.isWellFormed()).toBe(true);
            expect(value.includes('\u0000')).toBe(false);
          }
          expect(codePointLength(parsed.data.username)).toBeLessThanOrEqual(150);
          expect(codePointLength(parsed.data.identities[0]!.external_user_key)).toBeLessThanOrEqual(255);
        },
      ),
      { numRuns: SCHEMA_RUNS_PER_JOB },
    );
  });
});

describe('hostile payloads through the service', () => {
  const t = useTestService();
  useProgram(t);

  it(`fails ${SERVICE_RUNS_PER_JOB} hostile jobs of every name at their first attempt, writes nothing and keeps answering /healthz`, async () => {
    const before = await tableCounts(t);
    const samples = JOB_NAMES.flatMap((name) =>
      fc.sample(hostilePayload(name), { numRuns: SERVICE_RUNS_PER_JOB, seed: 9 }).map((s) => ({ name, ...s })),
    );
    let probing = true;
    const healthz: number[] = [];
    const probe = (async () => {
      while (probing) {
        healthz.push((await fetch(`${t.url}/healthz`)).status);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const jobs = await Promise.all(
      samples.map(({ name, payload }) =>
        t.add(SHAPES[name].queue, name, payload, { attempts: 5, backoff: { type: 'fixed', delay: 10 } }),
      ),
    );
    try {
      for (const [i, job] of jobs.entries()) {
        const done = await t.wait(job, 60_000);
        const { name, named } = samples[i]!;
        expect(done.state, `${name} ${JSON.stringify(samples[i]!.payload).slice(0, 200)}`).toBe('failed');
        expect(done.job.attemptsMade).toBe(1);
        expect(done.failedReason).toMatch(/^invalid payload: /);
        for (const path of named) if (path !== '(root)') expect(done.failedReason).toContain(`${path}: `);
      }
    } finally {
      probing = false;
      await probe;
    }
    expect(await tableCounts(t)).toEqual(before);
    expect(healthz.length).toBeGreaterThan(0);
    expect(healthz.every((s) => s === 200)).toBe(true);
  });

  it('never answers 500 to hostile path parameters', async () => {
    const programUuid = randomUUID();
    const segment = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }).map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, ''))),
      fc.string({ unit: 'binary-ascii', maxLength: 50 }).map((s) => s.replace(/[/?#\s]/g, '%')),
      fc.constantFrom(
        '%00',
        '%ED%A0%80',
        '%E0%A4%A',
        '%FF',
        '%C0%80',
        '..',
        '%2e%2e',
        '%',
        `${'%F0%9F%8E%93'.repeat(256)}`,
      ),
    );
    await fc.assert(
      fc.asyncProperty(segment, fc.integer({ min: 0, max: 5 }), async (raw, route) => {
        const path = [
          `/api/v1/jobs/${raw}`,
          `/api/v1/jobs/${raw}/result.csv`,
          `/api/v1/programs/${raw}/enrollments`,
          `/api/v1/programs/${programUuid}/enrollments/${raw}/history`,
          `/api/v1/programs/${programUuid}/courses/${raw}/enrollments`,
          `/api/v1/users/${raw}/course_enrollments`,
        ][route]!;
        const res = await t.api(path);
        expect(res.status, path).toBeLessThan(500);
        if (res.status >= 400) expect(typeof ((await res.json()) as { error: unknown }).error, path).toBe('string');
        else await res.arrayBuffer();
      }),
      { numRuns: 300 },
    );
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });
});
