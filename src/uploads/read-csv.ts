import { parse } from 'csv-parse/sync';
import type { z } from 'zod';
import { describeIssues, MAX_WRITE_RECORDS } from '../contract/payloads.js';

/**
 * Reading an enrollment CSV by the rules of docs/contract.md "Uploads": headers trimmed and case-folded,
 * extra columns dropped, blank lines ignored, RFC 4180 quoting. Shared by the HTTP uploads and the
 * CLI, so that a file behaves the same, with the same messages, whichever way it is sent.
 */

/** The file cannot be taken as it is; the message says why, for the person who sent it. */
export class UploadCsvError extends Error {
  override name = 'UploadCsvError';
}

export interface UploadCsv {
  /** The header's column names, trimmed and case-folded, in file order. */
  columns: string[];
  /** One object per data row, keyed by column name, values trimmed; a short row reads as empty cells. */
  rows: Array<Record<string, string>>;
  /** The file line each row ends on (the header is line 1, blank lines count), for messages. */
  lines: number[];
}

/** Reads the header and the data rows; refuses a file whose header lacks a `required` column. */
export function readUploadCsv(text: string, required: readonly string[]): UploadCsv {
  let filled: Array<{ record: string[]; line: number }>;
  try {
    filled = parse(text, {
      bom: true,
      info: true,
      raw: true,
      relax_column_count: true,
      skip_empty_lines: true,
      // Files edited on several systems mix line endings; csv-parse would otherwise keep the first.
      record_delimiter: ['\r\n', '\n', '\r'],
      // Each record kept with its start line only: its raw text and info object, held for all
      // 100,000 rows of a large file, were a third of the parser thread's heap.
      on_record: keepFilledRecord as unknown as (record: string[]) => string[] | null,
    }) as unknown as typeof filled;
  } catch (err) {
    throw new UploadCsvError(`CSV could not be read: ${err instanceof Error ? err.message : String(err)}`);
  }
  const [header, ...data] = filled;
  const columns = (header?.record ?? []).map((h) => h.trim().toLowerCase());
  const missing = required.filter((name) => !columns.includes(name));
  if (missing.length) throw new UploadCsvError(`CSV is missing headers [${missing.join(', ')}]`);
  return {
    columns,
    rows: data.map(({ record }) => {
      const row: Record<string, string> = {};
      // The first column of a repeated header wins, as in a spreadsheet lookup.
      columns.forEach((name, i) => {
        if (!(name in row)) row[name] = (record[i] ?? '').trim();
      });
      return row;
    }),
    // Line numbers count the header as line 1 (blank lines before it do not count, blank lines
    // after it do), and a record that spans lines is named by the line it starts on.
    lines: data.map((r) => r.line - header!.line + 1),
  };
}

/** A record with its start line, or null (dropped) for a line of only separators or spaces, as spreadsheets save empty rows. */
function keepFilledRecord(parsed: { record: string[]; info: { lines: number }; raw: string }) {
  return parsed.record.some((cell) => cell.trim() !== '') ? { record: parsed.record, line: startLine(parsed) } : null;
}

/** The physical line a record starts on: csv-parse counts to its end; a quoted field may span lines. */
function startLine({ info, raw }: { info: { lines: number }; raw: string }): number {
  const own = raw.replace(/^[\r\n]+/, '').replace(/(\r\n|\n|\r)$/, '');
  return info.lines - (own.match(/\r\n|\n|\r/g)?.length ?? 0);
}

/** Why a file of `count` records is more than one job takes, or null when it is not. */
export function recordLimitProblem(count: number): string | null {
  return count > MAX_WRITE_RECORDS
    ? `CSV has ${count.toLocaleString('en-US')} records; one job takes at most ${MAX_WRITE_RECORDS.toLocaleString('en-US')}`
    : null;
}

/**
 * Checks a payload built from a CSV against the schema the worker applies, so that a mistake is
 * reported before a job exists: `invalid payload: line 3.student_key: …`, where `lines` turns
 * `enrollments.<i>` paths into the CSV line the record came from. Null when the payload is valid.
 */
export function payloadProblem(schema: z.ZodType, payload: unknown, lines?: readonly number[]): string | null {
  const parsed = schema.safeParse(payload);
  if (parsed.success) return null;
  const issues = parsed.error.issues.map((issue) => {
    const [field, index, ...rest] = issue.path;
    if (lines && field === 'enrollments' && typeof index === 'number' && lines[index] !== undefined) {
      return { ...issue, path: [`line ${lines[index]}`, ...rest] };
    }
    return issue;
  });
  return `invalid payload: ${describeIssues(issues)}`;
}
