/**
 * Whether a job is bulk is read from its JSON text without parsing it (src/queue/readable-job.ts
 * countRecordsInJson): many bulk jobs taken at once only to be deferred each cost a parse of
 * 100,000 records before. The count must be what JSON.parse would give, whatever the text.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { countRecordsInJson } from '../../src/queue/readable-job.js';
import { recordCount } from '../../src/queue/workers.js';

it('counts the records of any JSON object as JSON.parse would', () => {
  const record = fc.oneof(
    fc.record({ student_key: fc.string({ unit: 'binary' }), status: fc.string() }),
    fc.jsonValue(),
  );
  const payload = fc.record(
    {
      program_uuid: fc.uuid(),
      enrollments: fc.oneof(fc.array(record), fc.jsonValue()),
      links: fc.oneof(fc.array(record), fc.jsonValue()),
      other: fc.jsonValue(),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(payload, fc.boolean(), (data, spaced) => {
      const text = JSON.stringify(data, null, spaced ? 2 : undefined);
      expect(countRecordsInJson(text)).toBe(recordCount(JSON.parse(text)));
    }),
    { numRuns: 2_000 },
  );
});

it('takes the last of a key sent twice, as JSON.parse does, and gives up on what is not an object', () => {
  expect(countRecordsInJson('{"enrollments":[1,2,3],"enrollments":[{"a":[1,2]}]}')).toBe(1);
  expect(countRecordsInJson('{"links":[],"enrollments":[ ]}')).toBe(0);
  expect(countRecordsInJson('{"enrollments":["a,\\"],[", "b"]}')).toBe(2);
  expect(countRecordsInJson('[1,2]')).toBeNull();
  expect(countRecordsInJson('{"enrollments":[1,2')).toBeNull();
  expect(countRecordsInJson('"text"')).toBeNull();
});

it('stops past `atMost` records, answering more than `atMost` exactly when there are more', () => {
  const payload = fc.record({
    enrollments: fc.array(fc.record({ student_key: fc.string() }), { maxLength: 30 }),
    links: fc.array(fc.integer(), { maxLength: 30 }),
  });
  fc.assert(
    fc.property(payload, fc.integer({ min: 0, max: 31 }), (data, atMost) => {
      const text = JSON.stringify(data);
      const counted = countRecordsInJson(text, atMost)!;
      expect(counted > atMost).toBe(recordCount(data) > atMost);
      if (counted <= atMost) expect(counted).toBe(recordCount(data));
    }),
    { numRuns: 2_000 },
  );
  // Cut short past the limit: the answer is already known, the rest is not read.
  expect(countRecordsInJson('{"enrollments":[1,2,3,4', 2)).toBe(3);
});
