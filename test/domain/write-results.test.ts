/**
 * The chunk loop takes a job's duplicated spellings from duplicatedSpellings, without the list of
 * unique records separateDuplicates also builds and sorts: both must name the same spellings.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { duplicatedSpellings, separateDuplicates } from '../../src/domain/write-results.js';

it('names the spellings separateDuplicates names', () => {
  const key = fc.constantFrom('abc', 'ABC', 'Abc', 'x', 'X', 'ß', 'SS', 'é', '');
  fc.assert(
    fc.property(fc.array(key, { maxLength: 30 }), (sent) => {
      const records = sent.map((s, index) => ({ index, sent: s, lower: s.toLowerCase() }));
      expect([...duplicatedSpellings(records)].sort()).toEqual([...separateDuplicates(records).duplicated].sort());
    }),
    { numRuns: 1_000 },
  );
  const abc = ['abc', 'ABC', 'abc', 'x'].map((s, index) => ({ index, sent: s, lower: s.toLowerCase() }));
  expect([...duplicatedSpellings(abc)].sort()).toEqual(['ABC', 'abc']);
});
