import { z } from 'zod';

/**
 * Validation of a payload's records a slice at a time, yielding to the event loop between slices.
 *
 * Fair share (docs/contract.md, "Fair share") promises that a small job starts within seconds
 * whatever bulk work is queued. Validating 100,000 records with zod in one step holds the event
 * loop for hundreds of milliseconds (seconds on a loaded machine), and two bulk jobs starting
 * together hold it for both: no other job is taken, no lock renewed, no `/healthz` answered
 * meanwhile. Sliced, the loop is never held for more than one slice.
 *
 * The outcome is exactly that of `schema.safeParse(data)`: the same data, the same issues in the
 * same order (so the failed reason, its 100-problem cap and its count are those of
 * docs/contract.md, "Payload errors"). The records array is validated by the array's own element
 * schema; everything else by the payload schema with the records' elements left unchecked.
 */

/** Records validated between two yields: a few milliseconds of zod each on a quiet machine. */
export const RECORDS_PER_SLICE = 2_000;

/** The fields that carry a payload's records (docs/contract.md, the write and link jobs). */
const RECORD_FIELDS = ['enrollments', 'links'] as const;

export type SlicedParseResult<T> = { success: true; data: T } | { success: false; issues: z.core.$ZodIssue[] };

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface SlicedPlan {
  field: string;
  /** The payload schema with the records' elements unchecked (the array's own checks kept). */
  envelope: z.ZodType;
  /** An array of the records' element schema, applied to one slice at a time. */
  slice: z.ZodType;
  /** The payload's fields in the order zod reports their issues. */
  keys: string[];
}

const plans = new WeakMap<z.ZodType, SlicedPlan | null>();

function planFor(schema: z.ZodType): SlicedPlan | null {
  const known = plans.get(schema);
  if (known !== undefined) return known;
  let plan: SlicedPlan | null = null;
  if (schema instanceof z.ZodObject) {
    const shape = schema.shape as Record<string, z.ZodType>;
    const field = RECORD_FIELDS.find((name) => shape[name] instanceof z.ZodArray);
    if (field !== undefined) {
      const records = shape[field] as z.ZodArray<z.ZodType>;
      const checks = (records._zod.def.checks ?? []) as z.core.$ZodCheck<unknown[]>[];
      plan = {
        field,
        envelope: schema.extend({ [field]: z.array(z.unknown()).check(...checks) }),
        slice: z.array(records.element),
        keys: Object.keys(shape),
      };
    }
  }
  plans.set(schema, plan);
  return plan;
}

/** `schema.safeParse(data)`, with a payload's records validated RECORDS_PER_SLICE at a time. */
export async function safeParseInSlices<T>(
  schema: z.ZodType<T>,
  data: unknown,
  perSlice = RECORDS_PER_SLICE,
): Promise<SlicedParseResult<T>> {
  const plan = planFor(schema);
  const records =
    plan !== null && data !== null && typeof data === 'object'
      ? (data as Record<string, unknown>)[plan.field]
      : undefined;
  if (plan === null || !Array.isArray(records) || records.length <= perSlice) {
    const whole = schema.safeParse(data);
    return whole.success ? { success: true, data: whole.data } : { success: false, issues: whole.error.issues };
  }
  const envelope = plan.envelope.safeParse(data);
  const envelopeIssues = envelope.success ? [] : envelope.error.issues;
  // The array itself refused (too many records): zod validates none of its elements then.
  if (envelopeIssues.some((issue) => issue.path[0] === plan.field)) return { success: false, issues: envelopeIssues };

  const recordIssues: z.core.$ZodIssue[] = [];
  const values: unknown[] = new Array(records.length);
  for (let start = 0; start < records.length; start += perSlice) {
    await nextTurn();
    const part = plan.slice.safeParse(records.slice(start, start + perSlice));
    if (part.success) {
      const parsed = part.data as unknown[];
      for (let i = 0; i < parsed.length; i++) values[start + i] = parsed[i];
    } else {
      for (const issue of part.error.issues) {
        const [index, ...rest] = issue.path;
        recordIssues.push({ ...issue, path: [plan.field, start + (index as number), ...rest] });
      }
    }
  }
  if (envelopeIssues.length === 0 && recordIssues.length === 0) {
    return { success: true, data: { ...(envelope.data as object), [plan.field]: values } as T };
  }
  // zod reports a payload's issues field by field, in the order of its schema's fields.
  const fieldIndex = plan.keys.indexOf(plan.field);
  const before = envelopeIssues.filter((issue) => plan.keys.indexOf(String(issue.path[0])) < fieldIndex);
  const after = envelopeIssues.filter((issue) => plan.keys.indexOf(String(issue.path[0])) >= fieldIndex);
  return { success: false, issues: [...before, ...recordIssues, ...after] };
}
