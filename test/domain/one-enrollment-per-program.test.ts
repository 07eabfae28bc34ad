import { describe, expect, it } from 'vitest';
import { chooseLinks, ProgramSeats } from '../../src/domain/one-enrollment-per-program.js';
import { type ProgramRecord, planProgramWrites } from '../../src/domain/program-enrollment-writes.js';

const P = 'program-a';
const Q = 'program-b';

describe('one PE per account and program', () => {
  it('a seat is taken once per account and program', () => {
    const seats = new ProgramSeats([{ userId: 1, programUuid: P }]);
    expect(seats.claim(1, P)).toBe(false);
    expect(seats.claim(1, Q)).toBe(true);
    expect(seats.claim(1, Q)).toBe(false);
    expect(seats.claim(2, P)).toBe(true);
  });

  it('links the oldest waiting PE of each program and keeps the rest waiting', () => {
    const { links, keptWaiting } = chooseLinks(
      [
        { peId: 10, programUuid: P, userId: 7 },
        { peId: 11, programUuid: P, userId: 7 },
        { peId: 12, programUuid: Q, userId: 7 },
      ],
      [],
    );
    expect(links).toEqual([
      { peId: 10, userId: 7 },
      { peId: 12, userId: 7 },
    ]);
    expect(keptWaiting.map((c) => c.peId)).toEqual([11]);
  });

  it('keeps a PE waiting when the account already holds a PE in its program', () => {
    const { links, keptWaiting } = chooseLinks(
      [
        { peId: 20, programUuid: P, userId: 7 },
        { peId: 21, programUuid: Q, userId: 7 },
      ],
      [{ userId: 7, programUuid: P }],
    );
    expect(links).toEqual([{ peId: 21, userId: 7 }]);
    expect(keptWaiting.map((c) => c.peId)).toEqual([20]);
  });

  it('a program write creates a PE waiting when its account is enrolled under another key', () => {
    const record = (index: number, key: string): ProgramRecord => ({
      index,
      sent: key,
      lower: key,
      status: 'enrolled',
      curriculumUuid: 'c',
    });
    const plan = planProgramWrites([record(0, 'a'), record(1, 'b'), record(2, 'c')], 'create', {
      existing: new Map(),
      accounts: new Map([
        ['a', 1],
        ['b', 1],
        ['c', 2],
      ]),
      usersInProgram: new Set([2]),
    });
    expect(plan.creates.map((c) => c.userId)).toEqual([1, null, null]);
    expect(plan.keptWaiting).toBe(2);
  });
});
