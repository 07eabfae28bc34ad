/**
 * Code-point order of two strings, as docs/contract.md "Order" requires (and as Postgres sorts with
 * COLLATE "C" in UTF-8). JavaScript's `<` compares UTF-16 code units instead, which puts characters
 * above U+FFFF (stored as surrogates D800–DFFF) before those in E000–FFFF; this corrects that.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Moves surrogates above E000–FFFF; the order among BMP units and among surrogates is kept. */
function codePointRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}
