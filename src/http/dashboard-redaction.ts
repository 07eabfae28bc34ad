/**
 * What Bull Board may show of a job (docs/contract.md, "HTTP", `/admin/queues`): every `email` and
 * `username` value in its data and result replaced by `"[redacted]"` (also where a result message
 * quotes one, as the link errors of rules.md do), and no stack trace: the failed reason says what
 * went wrong, a stack trace only adds the server's paths.
 */
export const REDACTED = '[redacted]';
const PII_FIELDS = new Set(['email', 'username']);

/** The email and username values anywhere in `value`. */
function piiValues(value: unknown, found: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const item of value) piiValues(item, found);
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (PII_FIELDS.has(key) && typeof item === 'string' && item.trim() !== '') found.add(item.trim());
      else piiValues(item, found);
    }
  }
  return found;
}

function redactText(text: string, pii: readonly string[]): string {
  let out = text;
  for (const value of pii) out = out.replaceAll(value, REDACTED);
  return out;
}

/** `value` with its email and username fields, and any string quoting one of `pii`, redacted. */
function redact(value: unknown, pii: readonly string[]): unknown {
  if (typeof value === 'string') return redactText(value, pii);
  if (Array.isArray(value)) return value.map((item) => redact(item, pii));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // Object keys too: a result keyed by something that quotes an email must not show it.
      out[redactText(key, pii)] =
        PII_FIELDS.has(key) && item !== null && item !== undefined ? REDACTED : redact(item, pii);
    }
    return out;
  }
  return value;
}

export interface DashboardJobView {
  data: unknown;
  returnvalue: unknown;
  failedReason?: string;
  stacktrace: string[] | null;
}

/**
 * The job as the dashboard shows it, changed in place (the job objects are read for the
 * dashboard's answer only): PII out of data, result and failed reason, stack trace emptied.
 */
export function redactForDashboard<J extends DashboardJobView>(job: J): J {
  // Longest first, so that an email is not left half-replaced by a username it contains.
  const pii = [...piiValues(job.data, piiValues(job.returnvalue, new Set()))].sort((a, b) => b.length - a.length);
  job.data = redact(job.data, pii);
  job.returnvalue = redact(job.returnvalue, pii);
  if (job.failedReason) job.failedReason = redactText(job.failedReason, pii);
  job.stacktrace = [];
  return job;
}
