/**
 * An account holds at most one PE per program (a unique index keeps it). When a learner's account
 * becomes known (docs/rules.md rules 5 and 9) and that account already holds a PE in the program,
 * or another PE of the same batch took the program first, the PE stays waiting instead of linking.
 */
export class ProgramSeats {
  private readonly taken = new Set<string>();

  /** `held`: the accounts (and their programs) that already have a PE there. */
  constructor(held: Iterable<{ userId: number; programUuid: string }> = []) {
    for (const h of held) this.taken.add(seat(h.userId, h.programUuid));
  }

  /** Takes the account's seat in the program; false when it is taken (the PE stays waiting). */
  claim(userId: number, programUuid: string): boolean {
    const key = seat(userId, programUuid);
    if (this.taken.has(key)) return false;
    this.taken.add(key);
    return true;
  }
}

const seat = (userId: number, programUuid: string) => `${userId}\u0000${programUuid}`;

export interface LinkCandidate {
  peId: number;
  programUuid: string;
  userId: number;
}

/**
 * Which waiting PEs link to their account, taken oldest first (in the order given): each that
 * finds the account's seat in its program free. The rest stay waiting.
 */
export function chooseLinks(
  candidates: readonly LinkCandidate[],
  held: Iterable<{ userId: number; programUuid: string }>,
): { links: Array<{ peId: number; userId: number }>; keptWaiting: LinkCandidate[] } {
  const seats = new ProgramSeats(held);
  const links: Array<{ peId: number; userId: number }> = [];
  const keptWaiting: LinkCandidate[] = [];
  for (const c of candidates) {
    if (seats.claim(c.userId, c.programUuid)) links.push({ peId: c.peId, userId: c.userId });
    else keptWaiting.push(c);
  }
  return { links, keptWaiting };
}
