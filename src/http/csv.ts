/** CSV writing as docs/contract.md "Uploads" and "HTTP" describe it: RFC 4180 quoting, CRLF after every line. */

/** A field, quoted (with quotes doubled) only when it holds a comma, a quote, CR or LF. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

export function csvLine(fields: readonly string[]): string {
  return `${fields.map(csvField).join(',')}\r\n`;
}
