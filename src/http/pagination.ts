import type { FastifyRequest } from 'fastify';
import type { KeysetWindow } from '../db/reads.js';
import { badRequest } from './errors.js';
import { requestOrigin, requestPath } from './urls.js';

/**
 * Keyset pagination over a list ordered by a numeric row id (docs/contract.md "Pagination"): `page_size`
 * (default 100, capped at 1,000) and an opaque `cursor`. Never OFFSET: a page costs the same
 * wherever it is, and rows added or removed meanwhile do not shift the pages.
 */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** Where a page starts: after `id` going forward, or before `id` going backward. */
interface Cursor {
  id: number;
  dir: 'next' | 'prev';
}

export interface PageRequest {
  pageSize: number;
  cursor: Cursor | null;
}

export interface Page<Item> {
  next: string | null;
  previous: string | null;
  results: Item[];
}

/** Reads `page_size` and `cursor` from the query; a bad value of either is a 400. */
export function parsePageRequest(query: unknown): PageRequest {
  const params = (query ?? {}) as Record<string, unknown>;
  return { pageSize: parsePageSize(params.page_size), cursor: parseCursor(params.cursor) };
}

function parsePageSize(raw: unknown): number {
  if (raw === undefined) return DEFAULT_PAGE_SIZE;
  // Digits only: "1e3", "-5", "2.0", "" and a repeated parameter are not positive integers.
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || Number(raw) < 1) {
    throw badRequest('page_size must be a positive integer');
  }
  return Math.min(Number(raw), MAX_PAGE_SIZE);
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify({ id: cursor.id, dir: cursor.dir })).toString('base64url');
}

function parseCursor(raw: unknown): Cursor | null {
  if (raw === undefined) return null;
  const invalid = badRequest('invalid cursor');
  // Buffer's base64 decoder skips characters it does not know; check the alphabet first.
  if (typeof raw !== 'string' || raw.length > 200 || !/^[A-Za-z0-9_-]+$/.test(raw)) throw invalid;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw invalid;
  }
  const { id, dir } = (decoded ?? {}) as { id?: unknown; dir?: unknown };
  // ids are bigserial values below 2^53; the bound leaves room for the id + 1 of an empty page.
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id >= Number.MAX_SAFE_INTEGER) throw invalid;
  if (dir !== 'next' && dir !== 'prev') throw invalid;
  return { id, dir };
}

/**
 * Answers one page of a list. `fetchWindow` runs the list's query restricted to a keyset window;
 * it is called once for the page (one row more than asked, to learn whether the list goes on) and,
 * on a page reached through a cursor, once more with `limit: 1` to learn whether the list goes on
 * the other way (rows may have been deleted since the cursor was made, so that is not assumed).
 */
export async function paginate<Row extends { id: number }, Item>(
  request: FastifyRequest,
  page: PageRequest,
  fetchWindow: (window: KeysetWindow) => Promise<Row[]>,
  toItem: (row: Row) => Item,
): Promise<Page<Item>> {
  const { pageSize, cursor } = page;
  // A previous page is read backwards from its cursor: the rows nearest before it, then reversed.
  const backwardFrom = cursor?.dir === 'prev' ? cursor.id : null;
  const forwardFrom = cursor?.dir === 'next' ? cursor.id : null;
  const fetched = await fetchWindow(
    backwardFrom !== null
      ? { afterId: null, beforeId: backwardFrom, descending: true, limit: pageSize + 1 }
      : { afterId: forwardFrom, beforeId: null, descending: false, limit: pageSize + 1 },
  );
  const more = fetched.length > pageSize;
  const rows = fetched.slice(0, pageSize);
  if (backwardFrom !== null) rows.reverse();

  // The page's bounds; an empty page (every row past the cursor deleted) sits at the cursor.
  const lastId = rows.at(-1)?.id ?? (backwardFrom !== null ? backwardFrom - 1 : (forwardFrom ?? 0));
  const firstId = rows[0]?.id ?? (backwardFrom !== null ? backwardFrom : (forwardFrom ?? 0) + 1);
  const anyAfter = async () =>
    (await fetchWindow({ afterId: lastId, beforeId: null, descending: false, limit: 1 })).length > 0;
  const anyBefore = async () =>
    (await fetchWindow({ afterId: null, beforeId: firstId, descending: true, limit: 1 })).length > 0;

  const hasNext = backwardFrom !== null ? await anyAfter() : more;
  // Without a cursor this is the first page.
  const hasPrevious = backwardFrom !== null ? more : forwardFrom !== null && (await anyBefore());

  const link = (to: Cursor) => {
    const query = new URLSearchParams({ page_size: String(pageSize), cursor: encodeCursor(to) });
    return `${requestOrigin(request)}${requestPath(request)}?${query}`;
  };
  return {
    next: hasNext ? link({ id: lastId, dir: 'next' }) : null,
    previous: hasPrevious ? link({ id: firstId, dir: 'prev' }) : null,
    results: rows.map(toItem),
  };
}
