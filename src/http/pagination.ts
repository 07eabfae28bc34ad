import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ListWindow, PageWindows } from '../db/reads.js';
import { badRequest } from './errors.js';
import { requestOrigin, requestPath } from './urls.js';

/**
 * Keyset pagination over a list ordered by a numeric row id (docs/contract.md "Pagination"): `page_size`
 * (default 100, capped at 1,000) and an opaque `cursor`. Never OFFSET: a page costs the same
 * wherever it is, and rows added or removed meanwhile do not shift the pages.
 */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
const CLOSE_OBJECT = Buffer.from('}');

/** Where a page starts: after `id` going forward, or before `id` going backward. */
interface Cursor {
  id: number;
  dir: 'next' | 'prev';
}

export interface PageRequest {
  pageSize: number;
  cursor: Cursor | null;
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
 * Answers one page of a list, as the JSON text of `{ next, previous, results }` (docs/contract.md
 * "HTTP"): the results as Postgres wrote them (db/reads.ts listPage), between the two links.
 * `fetchPage` runs the list's query in one statement over the page's keyset window (one row more
 * than the page, to learn whether the list goes on) and, on a page reached through a cursor, over
 * the window on the cursor's other side, to learn whether the list goes on that way (rows may have
 * been deleted since the cursor was made, so that is not assumed); null when the list's owner does
 * not exist, which `missing` then answers.
 */
export async function paginate(
  request: FastifyRequest,
  reply: FastifyReply,
  page: PageRequest,
  fetchPage: (windows: PageWindows) => Promise<ListWindow | null>,
  missing: () => Error,
): Promise<FastifyReply> {
  const { pageSize, cursor } = page;
  // A previous page is read backwards from its cursor: the rows nearest before it, in id order.
  const backwardFrom = cursor?.dir === 'prev' ? cursor.id : null;
  const forwardFrom = cursor?.dir === 'next' ? cursor.id : null;
  const limit = pageSize + 1;
  // The rows on the cursor's other side are those past the page's far end, since the page holds the
  // list's rows nearest to the cursor.
  const windows: PageWindows =
    backwardFrom !== null
      ? {
          page: { afterId: null, beforeId: backwardFrom, descending: true, limit },
          size: pageSize,
          beyond: { afterId: backwardFrom - 1, beforeId: null, descending: false, limit: 1 },
        }
      : {
          page: { afterId: forwardFrom, beforeId: null, descending: false, limit },
          size: pageSize,
          // Without a cursor this is the first page.
          beyond:
            forwardFrom !== null ? { afterId: null, beforeId: forwardFrom + 1, descending: true, limit: 1 } : null,
        };
  const fetched = await fetchPage(windows);
  if (fetched === null) throw missing();
  const more = fetched.found > pageSize;
  const hasNext = backwardFrom !== null ? fetched.beyond : more;
  const hasPrevious = backwardFrom !== null ? more : fetched.beyond;

  // The page's bounds; an empty page (every row past the cursor deleted) sits at the cursor.
  const lastId = fetched.lastId ?? (backwardFrom !== null ? backwardFrom - 1 : (forwardFrom ?? 0));
  const firstId = fetched.firstId ?? (backwardFrom !== null ? backwardFrom : (forwardFrom ?? 0) + 1);
  const link = (to: Cursor) => {
    const query = new URLSearchParams({ page_size: String(pageSize), cursor: encodeCursor(to) });
    return `${requestOrigin(request)}${requestPath(request)}?${query}`;
  };
  const next = hasNext ? link({ id: lastId, dir: 'next' }) : null;
  const previous = hasPrevious ? link({ id: firstId, dir: 'prev' }) : null;
  // What JSON.stringify writes for { next, previous, results }: compact, in this order.
  const head = Buffer.from(`{"next":${JSON.stringify(next)},"previous":${JSON.stringify(previous)},"results":`);
  const body = Buffer.concat([head, fetched.itemsJson, CLOSE_OBJECT]);
  return reply.type('application/json; charset=utf-8').send(body);
}
