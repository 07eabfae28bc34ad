/**
 * A time as docs/contract.md "Details that callers rely on" (Times) writes every timestamp: ISO-8601 in UTC with milliseconds
 * (`2026-01-31T09:15:00.123Z`). The one place the API formats a time.
 */
export function formatTimestamp(at: Date): string {
  return at.toISOString();
}
