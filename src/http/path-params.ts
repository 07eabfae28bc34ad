import { codePointLength, isWellFormedUnicode } from '../contract/payloads.js';

/**
 * Whether a percent-decoded path parameter can name anything stored (docs/contract.md, "Bad
 * requests"): no NUL (Postgres text refuses it), no lone surrogate, and at most `maxCodePoints`
 * code points, counted as the payload limits count them. One that cannot is answered 404 by its
 * route, before any query.
 */
export function canNameStored(value: string, maxCodePoints = Number.POSITIVE_INFINITY): boolean {
  return !value.includes('\u0000') && isWellFormedUnicode(value) && codePointLength(value) <= maxCodePoints;
}
