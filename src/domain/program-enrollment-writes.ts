import { ProgramSeats } from './one-enrollment-per-program.js';
import { isProgramStatus, type ProgramStatus } from './statuses.js';
import type { SentRecord } from './write-results.js';

export type WriteAction = 'create' | 'update' | 'create_or_update';

export interface ProgramRecord extends SentRecord {
  status: string;
  /** The curriculum a created PE gets (the record's, else the program's default). */
  curriculumUuid: string | null;
}

export interface ExistingProgramEnrollment {
  id: number;
  userId: number | null;
  status: ProgramStatus;
}

export interface ProgramWriteState {
  /** This program's PEs of the chunk's learners, by lower-cased key. */
  existing: Map<string, ExistingProgramEnrollment>;
  /** Accounts known for the chunk's learners, by lower-cased key. */
  accounts: Map<string, number>;
  /** Accounts that already have a PE in this program. */
  usersInProgram: Set<number>;
}

export interface ProgramWritePlan {
  results: Record<string, string>;
  creates: Array<{ record: ProgramRecord; status: ProgramStatus; curriculumUuid: string; userId: number | null }>;
  /** Every updated PE, changed or not: an update always refreshes the modification time. */
  updates: Array<{ id: number; from: ProgramStatus; to: ProgramStatus }>;
  /** Waiting PEs whose learner's account is now known (docs/rules.md rule 5). */
  links: Array<{ peId: number; userId: number }>;
  /** Learners whose account already has another PE in the program: they stay waiting. */
  keptWaiting: number;
}

/**
 * Program writes, per record, in Open edX's order of checks (docs/rules.md rule 4): `invalid-status`, then
 * `conflict` for a create of an existing PE or `not-in-program` for an update of a missing one.
 * Duplicates are settled before this. An update never changes the curriculum.
 */
export function planProgramWrites(
  records: readonly ProgramRecord[],
  action: WriteAction,
  state: ProgramWriteState,
): ProgramWritePlan {
  // Null prototype: a student key may be any string, `__proto__` included.
  const plan: ProgramWritePlan = { results: Object.create(null), creates: [], updates: [], links: [], keptWaiting: 0 };
  // Every seat here is in the one program being written.
  const program = '';
  const seats = new ProgramSeats([...state.usersInProgram].map((userId) => ({ userId, programUuid: program })));
  const accountFor = (lower: string): number | null => {
    const userId = state.accounts.get(lower);
    if (userId === undefined) return null;
    if (!seats.claim(userId, program)) {
      plan.keptWaiting += 1;
      return null;
    }
    return userId;
  };
  for (const record of records) {
    if (!isProgramStatus(record.status)) {
      plan.results[record.sent] = 'invalid-status';
      continue;
    }
    const existing = state.existing.get(record.lower);
    if (existing) {
      if (action === 'create') {
        plan.results[record.sent] = 'conflict';
        continue;
      }
      plan.updates.push({ id: existing.id, from: existing.status, to: record.status });
      if (existing.userId === null) {
        const userId = accountFor(record.lower);
        if (userId !== null) plan.links.push({ peId: existing.id, userId });
      }
    } else {
      if (action === 'update') {
        plan.results[record.sent] = 'not-in-program';
        continue;
      }
      // The job was refused earlier if a record needs a default curriculum the program lacks.
      plan.creates.push({
        record,
        status: record.status,
        curriculumUuid: record.curriculumUuid!,
        userId: accountFor(record.lower),
      });
    }
    plan.results[record.sent] = record.status;
  }
  return plan;
}
