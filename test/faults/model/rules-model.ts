/**
 * A sequential model of docs/rules.md, written from the document (and docs/contract.md for the
 * shapes of results), not from src/: the fault suite replays a random workload's jobs through it
 * in the order their transactions committed, and the service's rows and results must equal it.
 *
 * Pure and small on purpose: one organization's learners and accounts, PEs, PCEs, CEs and staff
 * roles, and one function per job kind the workload sends. What the workload never sends (course
 * external keys, `course-enrollment-changed`, retirement, curricula) is left out. There is no
 * clock: expiry takes every waiting PE, as `expiration_days: 0` does (rule 11).
 */

export type ProgramStatus = 'enrolled' | 'pending' | 'suspended' | 'canceled' | 'ended';
export type CourseStatus = 'active' | 'inactive';
const PROGRAM_STATUSES: readonly string[] = ['enrolled', 'pending', 'suspended', 'canceled', 'ended'];
const COURSE_STATUSES: readonly string[] = ['active', 'inactive'];
/** Results that are not a status (contract.md "Result of both write jobs"). */
const ERROR_RESULTS: readonly string[] = ['duplicated', 'invalid-status', 'conflict', 'not-in-program', 'not-found'];
const MASTERS = 'masters';
/** Modes the masters track replaces on an active CE (rule 6). */
const CONVERTIBLE = ['audit', 'honor'];

export interface CatalogProgram {
  program_uuid: string;
  organization_key: string;
  /** Course key -> the modes the course offers. */
  courses: Map<string, readonly string[]>;
}

export interface Pce {
  /** Creation order, global: "oldest first" and the order effects run in. */
  id: number;
  course: string;
  status: CourseStatus;
  /** The account whose CE for `course` this PCE holds; null while its PE waits. */
  ce: number | null;
  /** A staff role granted while the PE waited (rule 8). */
  pendingStaff: boolean;
}

export interface Pe {
  id: number;
  program: string;
  org: string;
  /** The key as first sent. */
  key: string;
  lower: string;
  status: ProgramStatus;
  /** The account; null while waiting (rule 5). */
  user: number | null;
  pces: Pce[];
}

export interface Ce {
  mode: string;
  active: boolean;
}

export interface ModelState {
  catalog: Map<string, CatalogProgram>;
  /** user_id -> username. */
  accounts: Map<number, string>;
  /** Learner (organization, lower-cased key) -> the account it is known to belong to. */
  learnerAccount: Map<string, number>;
  pes: Pe[];
  /** By `user|course`. */
  ces: Map<string, Ce>;
  /** Staff roles, by `user|course`. */
  staff: Set<string>;
  /** account-created results by event_id (rule 9: a replay returns the same result). */
  events: Map<string, AccountCreatedResult>;
  nextId: number;
}

export function emptyState(programs: readonly CatalogProgram[]): ModelState {
  return {
    catalog: new Map(programs.map((p) => [p.program_uuid, p])),
    accounts: new Map(),
    learnerAccount: new Map(),
    pes: [],
    ces: new Map(),
    staff: new Set(),
    events: new Map(),
    nextId: 1,
  };
}

const learnerId = (org: string, lower: string) => `${org}\u001f${lower}`;
const ceKey = (user: number, course: string) => `${user}|${course}`;
/** The service compares keys case-insensitively; the workload's keys are ASCII. */
const lowerOf = (key: string) => key.trim().toLowerCase();
const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function peOf(s: ModelState, program: string, lower: string): Pe | undefined {
  return s.pes.find((pe) => pe.program === program && pe.lower === lower);
}

/** Rule 5 and contract "Account events": one PE per account and program; a PE that would be a second stays waiting. */
function accountHasPe(s: ModelState, user: number, program: string): boolean {
  return s.pes.some((pe) => pe.user === user && pe.program === program);
}

function holders(s: ModelState, user: number, course: string): Pce[] {
  return s.pes.flatMap((pe) => pe.pces.filter((p) => p.ce === user && p.course === course));
}

function othersActive(s: ModelState, user: number, course: string, pce: Pce): boolean {
  return holders(s, user, course).some((p) => p !== pce && p.status === 'active');
}

/** Rule 6: a PCE gets the account's CE (created realized, or its PE linked). */
function realizePce(s: ModelState, pce: Pce, user: number): void {
  const key = ceKey(user, pce.course);
  let ce = s.ces.get(key);
  if (!ce) {
    ce = { mode: MASTERS, active: true };
    s.ces.set(key, ce);
  } else if (!ce.active) {
    ce.mode = MASTERS;
    ce.active = true;
  } else if (CONVERTIBLE.includes(ce.mode)) {
    ce.mode = MASTERS;
  }
  pce.ce = user;
  if (pce.status === 'inactive' && ce.mode === MASTERS && !othersActive(s, user, pce.course, pce)) ce.active = false;
}

/** Rules 5, 6 and 8: the PE gets its account, every PCE is realized and pending roles become real. */
function link(s: ModelState, pe: Pe, user: number): void {
  pe.user = user;
  for (const pce of pe.pces) realizePce(s, pce, user);
  for (const pce of pe.pces) {
    if (!pce.pendingStaff) continue;
    pce.pendingStaff = false;
    s.staff.add(ceKey(user, pce.course));
  }
}

/** Rule 10: a realized PE lets go of its account; CEs nobody else actively holds are deactivated, to audit where offered. */
function unlink(s: ModelState, pe: Pe): void {
  const user = pe.user!;
  const modes = s.catalog.get(pe.program)!.courses;
  for (const pce of pe.pces) {
    if (pce.ce === null) continue;
    pce.ce = null;
    if (holders(s, user, pce.course).some((p) => p.status === 'active')) continue;
    const ce = s.ces.get(ceKey(user, pce.course))!;
    ce.active = false;
    if (modes.get(pce.course)?.includes('audit')) ce.mode = 'audit';
  }
  pe.user = null;
}

/** Rule 7: a realized PCE's status change moves its CE (never its mode). */
function changePceStatus(s: ModelState, pe: Pe, pce: Pce, to: CourseStatus): void {
  pce.status = to;
  if (pe.user === null) return;
  if (pce.ce === null) {
    realizePce(s, pce, pe.user);
    return;
  }
  const ce = s.ces.get(ceKey(pce.ce, pce.course))!;
  if (to === 'active') ce.active = true;
  else if (!othersActive(s, pce.ce, pce.course, pce)) ce.active = false;
}

export interface WriteResult {
  code: 200 | 204 | 207 | 422;
  results: Record<string, string>;
  counts: Record<string, number>;
}

/** contract.md "Result of both write jobs": code and counts from the per-learner results. */
export function summarize(results: Record<string, string>): WriteResult {
  const counts: Record<string, number> = {};
  let ok = 0;
  const values = Object.values(results);
  for (const v of values) {
    counts[v] = (counts[v] ?? 0) + 1;
    if (!ERROR_RESULTS.includes(v)) ok += 1;
  }
  const code = values.length === 0 ? 204 : ok === values.length ? 200 : ok === 0 ? 422 : 207;
  return { code, results, counts };
}

type Action = 'create' | 'update' | 'create_or_update';

/** Rule 3: keys sent twice or more (case-insensitively) are `duplicated` for every spelling. */
function splitDuplicates<T extends { student_key: string }>(records: readonly T[]) {
  const n = new Map<string, number>();
  for (const r of records) n.set(lowerOf(r.student_key), (n.get(lowerOf(r.student_key)) ?? 0) + 1);
  const results: Record<string, string> = {};
  const unique: T[] = [];
  for (const r of records) {
    if (n.get(lowerOf(r.student_key))! > 1) results[r.student_key.trim()] = 'duplicated';
    else unique.push(r);
  }
  return { results, unique };
}

export interface ProgramWrite {
  program_uuid: string;
  action: Action;
  enrollments: Array<{ student_key: string; status: string }>;
}

/** `write-program-enrollments`: rules 3, 4, 5 and 7 (program statuses never cascade). */
export function writeProgramEnrollments(s: ModelState, job: ProgramWrite): WriteResult {
  const program = s.catalog.get(job.program_uuid)!;
  const { results, unique } = splitDuplicates(job.enrollments);
  const toLink: Array<{ pe: Pe; user: number }> = [];
  // Seats taken in this job too: two learners of one account may not both link in one program.
  const claimed = new Set<number>();
  const accountFor = (lower: string): number | null => {
    const user = s.learnerAccount.get(learnerId(program.organization_key, lower));
    if (user === undefined || claimed.has(user) || accountHasPe(s, user, program.program_uuid)) return null;
    claimed.add(user);
    return user;
  };
  for (const r of unique) {
    const sent = r.student_key.trim();
    const lower = lowerOf(sent);
    if (!PROGRAM_STATUSES.includes(r.status)) {
      results[sent] = 'invalid-status';
      continue;
    }
    const pe = peOf(s, program.program_uuid, lower);
    if (pe) {
      if (job.action === 'create') {
        results[sent] = 'conflict';
        continue;
      }
      pe.status = r.status as ProgramStatus;
      if (pe.user === null) {
        const user = accountFor(lower);
        if (user !== null) toLink.push({ pe, user });
      }
    } else {
      if (job.action === 'update') {
        results[sent] = 'not-in-program';
        continue;
      }
      s.pes.push({
        id: s.nextId++,
        program: program.program_uuid,
        org: program.organization_key,
        key: sent,
        lower,
        status: r.status as ProgramStatus,
        user: accountFor(lower),
        pces: [],
      });
    }
    results[sent] = r.status;
  }
  for (const { pe, user } of toLink) link(s, pe, user);
  return summarize(results);
}

export interface CourseWrite {
  program_uuid: string;
  course_key: string;
  action: Action;
  enrollments: Array<{ student_key: string; status: string; course_staff?: boolean }>;
}

/** `write-program-course-enrollments`: rules 1, 3, 4, 5, 6, 7 and 8, checks in rule 4's order. */
export function writeProgramCourseEnrollments(s: ModelState, job: CourseWrite): WriteResult {
  const program = s.catalog.get(job.program_uuid)!;
  const org = program.organization_key;
  const course = job.course_key;
  const { results, unique } = splitDuplicates(job.enrollments);
  const planned: Array<{ sent: string; lower: string; status: CourseStatus; staff?: boolean }> = [];
  for (const r of unique) {
    const sent = r.student_key.trim();
    const lower = lowerOf(sent);
    // Rule 1: another program's active PCE for this learner and course, before every other check.
    const elsewhere = s.pes.some(
      (pe) =>
        pe.org === org &&
        pe.lower === lower &&
        pe.program !== program.program_uuid &&
        pe.pces.some((p) => p.course === course && p.status === 'active'),
    );
    if (r.status === 'active' && elsewhere) results[sent] = 'conflict';
    else if (!COURSE_STATUSES.includes(r.status)) results[sent] = 'invalid-status';
    else {
      const pe = peOf(s, program.program_uuid, lower);
      const pce = pe?.pces.find((p) => p.course === course);
      if (!pe) results[sent] = 'not-in-program';
      else if (pce && job.action === 'create') results[sent] = 'conflict';
      else if (!pce && job.action === 'update') results[sent] = 'not-found';
      else {
        results[sent] = r.status;
        planned.push({ sent, lower, status: r.status as CourseStatus, staff: r.course_staff });
      }
    }
  }
  // Rule 5: a write to a waiting PE of a learner whose account is now known links it (oldest first,
  // unless the account already has a PE in the program). Records that ended in an error are not
  // writes to their PE: they change nothing (rules 1 and 8).
  const waiting = planned
    .map((r) => peOf(s, program.program_uuid, r.lower)!)
    .filter((pe) => pe.user === null && s.learnerAccount.has(learnerId(org, pe.lower)))
    .sort((a, b) => a.id - b.id);
  for (const pe of waiting) {
    const user = s.learnerAccount.get(learnerId(org, pe.lower))!;
    if (!accountHasPe(s, user, program.program_uuid)) link(s, pe, user);
  }
  // Status changes of existing PCEs first, then new PCEs (rules 6 and 7).
  const created: Array<{ pe: Pe; pce: Pce }> = [];
  for (const r of planned) {
    const pe = peOf(s, program.program_uuid, r.lower)!;
    const pce = pe.pces.find((p) => p.course === course);
    if (pce) {
      if (pce.status !== r.status) changePceStatus(s, pe, pce, r.status);
    } else {
      const fresh: Pce = { id: s.nextId++, course, status: r.status, ce: null, pendingStaff: false };
      pe.pces.push(fresh);
      created.push({ pe, pce: fresh });
    }
  }
  for (const { pe, pce } of created) if (pe.user !== null) realizePce(s, pce, pe.user);
  // Rule 8: true grants, false revokes; pending on the PCE while the PE waits.
  for (const r of planned) {
    if (r.staff === undefined) continue;
    const pe = peOf(s, program.program_uuid, r.lower)!;
    const pce = pe.pces.find((p) => p.course === course)!;
    if (pe.user === null) pce.pendingStaff = r.staff;
    else if (r.staff) s.staff.add(ceKey(pe.user, course));
    else s.staff.delete(ceKey(pe.user, course));
  }
  return summarize(results);
}

export interface AccountCreated {
  event_id: string;
  user_id: number;
  username: string;
  identities: Array<{ organization_key: string; external_user_key: string }>;
}

export interface AccountCreatedResult {
  linked: Array<{ program_uuid: string; student_key: string; course_keys: string[] }>;
}

/**
 * `account-created` (rule 9, contract "account-created"): records the account and makes the
 * identities its learners (identities it no longer lists are forgotten), then links every waiting
 * PE of those learners, oldest first. A replayed event_id returns its first result.
 */
export function accountCreated(s: ModelState, event: AccountCreated): AccountCreatedResult {
  const earlier = s.events.get(event.event_id);
  if (earlier) return earlier;
  for (const [user, name] of s.accounts)
    if (name === event.username && user !== event.user_id)
      throw new Error(`username of user_id ${event.user_id} already belongs to user_id ${user}`);
  s.accounts.set(event.user_id, event.username);
  const ids = new Set(event.identities.map((i) => learnerId(i.organization_key, lowerOf(i.external_user_key))));
  for (const [id, user] of s.learnerAccount) if (user === event.user_id && !ids.has(id)) s.learnerAccount.delete(id);
  for (const id of ids) s.learnerAccount.set(id, event.user_id);
  const waiting = s.pes.filter((pe) => pe.user === null && ids.has(learnerId(pe.org, pe.lower)));
  const linked: AccountCreatedResult['linked'] = [];
  for (const pe of waiting.sort((a, b) => a.id - b.id)) {
    if (accountHasPe(s, event.user_id, pe.program)) continue;
    link(s, pe, event.user_id);
    linked.push({
      program_uuid: pe.program,
      student_key: pe.key,
      course_keys: pe.pces.map((p) => p.course).sort(byCodePoint),
    });
  }
  linked.sort((a, b) => byCodePoint(a.program_uuid, b.program_uuid) || byCodePoint(a.student_key, b.student_key));
  const result = { linked };
  s.events.set(event.event_id, result);
  return result;
}

/** One link of `link-program-enrollments` (rule 10): its error, or null when it linked. */
export function linkProgramEnrollment(
  s: ModelState,
  program_uuid: string,
  student_key: string,
  username: string,
): string | null {
  const program = s.catalog.get(program_uuid)!;
  const key = student_key.trim();
  const user = [...s.accounts].find(([, name]) => name === username.trim())?.[0];
  if (user === undefined) return `No user found with username ${username}`;
  const pe = peOf(s, program_uuid, lowerOf(key));
  if (!pe) return `No program enrollment found for program uuid=${program_uuid} and external student key=${key}`;
  if (pe.user === user)
    return `Program enrollment with external_student_key=${key} is already linked to target account username=${username}`;
  if (accountHasPe(s, user, program_uuid))
    return `User ${username} already has a program enrollment in program uuid=${program_uuid}`;
  if (pe.user !== null) unlink(s, pe);
  link(s, pe, user);
  // contract "link-program-enrollments": the learner's account is now known, as account-created would make it.
  s.learnerAccount.set(learnerId(program.organization_key, pe.lower), user);
  return null;
}

export interface ExpiryResult {
  removed: { program_enrollments: number; program_course_enrollments: number };
}

/** `expire-waiting-enrollments` with `expiration_days: 0` (rule 11): every waiting PE goes, with its PCEs and pending roles. */
export function expireWaiting(s: ModelState): ExpiryResult {
  const expired = s.pes.filter((pe) => pe.user === null);
  s.pes = s.pes.filter((pe) => pe.user !== null);
  return {
    removed: {
      program_enrollments: expired.length,
      program_course_enrollments: expired.reduce((n, pe) => n + pe.pces.length, 0),
    },
  };
}

/** The state as sorted lines, to compare with the same lines read from Postgres. */
export interface StateLines {
  /** `program|key lower|status|user or -`. */
  pes: string[];
  /** `program|key lower|course|status|CE's account or -`. */
  pces: string[];
  /** `user|course|mode|active`. */
  ces: string[];
  /** `user|course`. */
  staff: string[];
  /** `program|key lower|course`. */
  pending: string[];
  /** `organization|key lower|user`: learners known to belong to an account. */
  learners: string[];
}

export function stateLines(s: ModelState): StateLines {
  const sorted = (xs: string[]) => xs.sort(byCodePoint);
  return {
    pes: sorted(s.pes.map((pe) => `${pe.program}|${pe.lower}|${pe.status}|${pe.user ?? '-'}`)),
    pces: sorted(
      s.pes.flatMap((pe) => pe.pces.map((p) => `${pe.program}|${pe.lower}|${p.course}|${p.status}|${p.ce ?? '-'}`)),
    ),
    ces: sorted([...s.ces].map(([k, ce]) => `${k}|${ce.mode}|${ce.active}`)),
    staff: sorted([...s.staff]),
    pending: sorted(
      s.pes.flatMap((pe) => pe.pces.filter((p) => p.pendingStaff).map((p) => `${pe.program}|${pe.lower}|${p.course}`)),
    ),
    learners: sorted([...s.learnerAccount].map(([id, user]) => `${id.replace('\u001f', '|')}|${user}`)),
  };
}
