import type { Fragment, Sql } from 'postgres';

/**
 * The queries behind the read API (docs/contract.md "HTTP"). Each list query takes a keyset window on its
 * row id, so that one pagination helper serves every list and no page is read with OFFSET. A list's
 * page comes back as JSON text that Postgres wrote (listPage).
 */

/** Rows whose id is above `afterId` and/or below `beforeId`, the first `limit` in that order. */
export interface KeysetWindow {
  afterId: number | null;
  beforeId: number | null;
  /** Descending takes the rows nearest to `beforeId`: a previous page read backwards. */
  descending: boolean;
  limit: number;
}

/**
 * The windows a page reads in one statement: the page's own, and where the page was reached through
 * a cursor, the one on its other side, which only shows whether the list goes on that way.
 */
export interface PageWindows {
  /** The page's window, one row longer than the page: that row only shows that the list goes on. */
  page: KeysetWindow;
  /** Rows a page holds: the first of the window's, in its order. */
  size: number;
  beyond: KeysetWindow | null;
}

/** A page of a list as Postgres found it. */
export interface ListWindow {
  /** Rows found in the page's window: up to its `limit`, one more than the page holds. */
  found: number;
  /** The ids of the page's first and last row (in id order); null for an empty page. */
  firstId: number | null;
  lastId: number | null;
  /** The page's items, in id order, as the UTF-8 text of a JSON array. */
  itemsJson: Buffer;
  /** Whether the `beyond` window holds any row (false when there is none to look at). */
  beyond: boolean;
}

/** The `and … order by … limit …` tail of a list query, on the row id `column`. */
function keyset(sql: Sql, column: Fragment, window: KeysetWindow): Fragment {
  return sql`
    ${window.afterId !== null ? sql`and ${column} > ${window.afterId}` : sql``}
    ${window.beforeId !== null ? sql`and ${column} < ${window.beforeId}` : sql``}
    order by ${column} ${window.descending ? sql`desc` : sql`asc`}
    limit ${window.limit}`;
}

/**
 * A page of a list in one statement. `rows(window)` is the list's query over one keyset window: its
 * `id` and its `item`, the JSON text of the item the contract specifies (no relation in it may be
 * named `item`: the statement around it names a column so). Postgres writes out the page, its items
 * joined into one JSON array, which comes back as the bytes Postgres sent (postgres.js `raw`): a
 * 1,000-row page is then one buffer to the service instead of 1,000 rows to decode, map and
 * serialise again, which was most of a deep page's time there (README "Performance", `--large`).
 * Read as a string it would be one of about 150 KiB, which V8 puts in its old generation, and a
 * full garbage collection followed every few dozen pages. `row_to_json` writes compact JSON with
 * the fields in the order of the item's columns and escapes strings as JSON.stringify does (only
 * `"`, `\` and control characters; no stored string holds a lone surrogate), so the answer is the
 * same text. The window beyond the page, and `exists` (the list's owner, such as its program), are
 * read in the same statement, one round trip: on a busy machine a page waits for a CPU at each.
 * Null when `exists` is false.
 */
async function listPage(
  sql: Sql,
  windows: PageWindows,
  rows: (window: KeysetWindow) => Fragment,
  exists: Fragment = sql`true`,
): Promise<ListWindow | null> {
  const { page, size, beyond } = windows;
  // Beyond the page, a subquery in FROM keeps its `order by … limit 1` (an index probe), which
  // EXISTS would drop for a scan of the table.
  const [row] = await sql`
    select ${exists} as listed,
           count(*) as found,
           min(id) filter (where n <= ${size}) as first_id,
           max(id) filter (where n <= ${size}) as last_id,
           ${beyond ? sql`(select count(*) from (${rows(beyond)}) beyond) > 0` : sql`false`} as beyond,
           '[' || coalesce(string_agg(item, ',' order by id) filter (where n <= ${size}), '') || ']' as items
    from (
      select id, item, row_number() over (order by id ${page.descending ? sql`desc` : sql`asc`}) as n
      from (${rows(page)}) windowed
    ) numbered`.raw();
  // Text format: digits, `t`/`f`, NULL as null.
  const [listed, found, firstId, lastId, beyondAny, items] = row as unknown as (Buffer | null)[];
  if (listed!.toString() !== 't') return null;
  const id = (value: Buffer | null) => (value === null ? null : Number(value.toString()));
  return {
    found: Number(found!.toString()),
    firstId: id(firstId!),
    lastId: id(lastId!),
    beyond: beyondAny!.toString() === 't',
    itemsJson: items!,
  };
}

export async function programExists(sql: Sql, programUuid: string): Promise<boolean> {
  const [row] = await sql`select 1 from programs where program_uuid = ${programUuid}`;
  return row !== undefined;
}

/**
 * A page of the PEs of one program, as docs/contract.md "HTTP" lists them (`username` and `email`
 * are '' while the PE waits for its account, and `email` is '' for an account without one); null
 * when there is no such program.
 */
export async function listProgramEnrollments(
  sql: Sql,
  programUuid: string,
  windows: PageWindows,
): Promise<ListWindow | null> {
  return listPage(
    sql,
    windows,
    (window) => sql`
      select pe.id, row_to_json(item_fields)::text as item
      from program_enrollments pe
      left join accounts a on a.user_id = pe.user_id
      cross join lateral (
        select pe.student_key, pe.status, pe.user_id is not null as account_exists, pe.curriculum_uuid,
               coalesce(a.username, '') as username, coalesce(a.email, '') as email
      ) item_fields
      where pe.program_uuid = ${programUuid}
      ${keyset(sql, sql`pe.id`, window)}`,
    sql`exists (select 1 from programs where program_uuid = ${programUuid})`,
  );
}

/**
 * The PCEs of one program and course (`courseKey` is the course's own key). A realized learner is
 * staff when the account holds the course's staff role; a waiting one when a staff role waits for
 * the account on that PCE (Open edX `is_course_staff_enrollment`). Never null: the caller has
 * found the program.
 */
export async function listProgramCourseEnrollments(
  sql: Sql,
  programUuid: string,
  courseKey: string,
  windows: PageWindows,
): Promise<ListWindow | null> {
  return listPage(
    sql,
    windows,
    (window) => sql`
      select pce.id, row_to_json(item_fields)::text as item
      from program_course_enrollments pce
      join program_enrollments pe on pe.id = pce.program_enrollment_id
      cross join lateral (
        select pe.student_key, pce.status, pe.user_id is not null as account_exists, pe.curriculum_uuid,
               case when pe.user_id is not null
                 then exists (select 1 from course_staff_roles r
                              where r.user_id = pe.user_id and r.course_key = pce.course_key)
                 else exists (select 1 from pending_role_assignments p
                              where p.program_course_enrollment_id = pce.id and p.role = 'staff')
               end as course_staff
      ) item_fields
      where pce.course_key = ${courseKey} and pe.program_uuid = ${programUuid}
      ${keyset(sql, sql`pce.id`, window)}`,
  );
}

export interface HistoryEntry {
  at: Date;
  entity: string;
  action: string;
  changes: unknown;
  jobId: string | null;
  queue: string | null;
  requestedBy: string | null;
  courseKey: string | null;
}

/**
 * The history of one learner's PE and its PCEs, oldest first; empty when the program has no PE
 * for that key. The key matches case-insensitively, with Postgres's lower() as the stored
 * `student_key_lower` uses (JavaScript's toLowerCase differs on a few characters).
 */
export async function learnerHistory(sql: Sql, programUuid: string, studentKey: string): Promise<HistoryEntry[]> {
  return sql<HistoryEntry[]>`
    select h.at, h.entity, h.action, h.changes, h.job_id as "jobId", h.queue, h.requested_by as "requestedBy", h.course_key as "courseKey"
    from program_enrollments pe
    join history h on h.program_enrollment_id = pe.id
    where pe.program_uuid = ${programUuid} and pe.student_key_lower = lower(${studentKey})
      and h.entity in ('program_enrollment', 'program_course_enrollment')
    order by h.id`;
}

export async function accountExists(sql: Sql, userId: number): Promise<boolean> {
  const [row] = await sql`select 1 from accounts where user_id = ${userId}`;
  return row !== undefined;
}

export interface UserCourseEnrollmentRow {
  courseKey: string;
  mode: string;
  isActive: boolean;
  courseStaff: boolean;
}

/** An account's course enrollments, unordered (callers sort in code-point order). */
export async function userCourseEnrollments(sql: Sql, userId: number): Promise<UserCourseEnrollmentRow[]> {
  return sql<UserCourseEnrollmentRow[]>`
    select ce.course_key as "courseKey", ce.mode, ce.is_active as "isActive",
           r.user_id is not null as "courseStaff"
    from course_enrollments ce
    left join course_staff_roles r on r.user_id = ce.user_id and r.course_key = ce.course_key
    where ce.user_id = ${userId}`;
}
