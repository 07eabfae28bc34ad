/** CSV writing as docs/contract.md "Uploads" and "HTTP" describe it: RFC 4180 quoting, CRLF after every line. */

/**
 * A field, quoted (with quotes doubled) only when it holds a comma, a quote, CR or LF. A cell that
 * a spreadsheet would run as a formula (it begins with `=`, `+`, `-`, `@`, a tab or CR) gets a
 * leading `'`, as OWASP's "CSV Injection" advice has it; the JSON results keep the key as sent.
 */
export function csvField(value: string): string {
  const cell = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell;
}

export function csvLine(fields: readonly string[]): string {
  return `${fields.map(csvField).join(',')}\r\n`;
}
