import { SingleBar } from 'cli-progress';
import { compareCodePoints } from '../domain/order.js';
import type { Progress } from './queue-client.js';

/** Human-readable lines for the results of docs/contract.md, by job name; pure, so tested alone. */

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `code 207` and one `  <result>  <count>` line per result value, sorted. */
export function describeWriteResult(result: unknown): string[] {
  if (!isRecord(result) || !isRecord(result.counts)) return [JSON.stringify(result)];
  const counts = Object.entries(result.counts).sort(([a], [b]) => compareCodePoints(a, b));
  const width = Math.max(0, ...counts.map(([k]) => k.length));
  return [`code ${String(result.code)}`, ...counts.map(([k, n]) => `  ${k.padEnd(width)}  ${String(n)}`)];
}

export function describeLinkResult(result: unknown, sent: number | undefined): string[] {
  if (!isRecord(result) || !isRecord(result.errors)) return [JSON.stringify(result)];
  const errors = Object.entries(result.errors).sort(([a], [b]) => compareCodePoints(a, b));
  if (errors.length === 0) return ['every link held'];
  const head = sent === undefined ? `${errors.length} links failed` : `${errors.length} of ${sent} links failed`;
  return [head, ...errors.map(([key, message]) => `  ${key}: ${String(message)}`)];
}

export function describeResult(name: string, result: unknown, context: { links?: number } = {}): string[] {
  switch (name) {
    case 'write-program-enrollments':
    case 'write-program-course-enrollments':
    // The HTTP course upload's job: its per-row results are for result.csv; code and counts say enough here.
    case 'write-program-course-enrollments-upload':
      return describeWriteResult(result);
    case 'link-program-enrollments':
      return describeLinkResult(result, context.links);
    case 'expire-waiting-enrollments': {
      const removed = isRecord(result) && isRecord(result.removed) ? result.removed : undefined;
      if (!removed) break;
      return [
        `removed ${String(removed.program_enrollments)} waiting program enrollments and ${String(removed.program_course_enrollments)} program course enrollments`,
      ];
    }
    case 'retire-learner':
      if (isRecord(result) && typeof result.retired === 'number')
        return [`retired ${result.retired} program enrollments`];
      break;
    case 'upsert-program':
      if (isRecord(result) && typeof result.program_uuid === 'string') return [`program ${result.program_uuid} loaded`];
      break;
  }
  return [JSON.stringify(result)];
}

export function describeProgress(progress: Progress | undefined): string {
  if (!progress) return '-';
  const percent = progress.total > 0 ? Math.floor((progress.done / progress.total) * 100) : 100;
  return `${progress.done}/${progress.total} (${percent}%)`;
}

export interface ProgressView {
  update(progress: Progress): void;
  stop(): void;
}

/**
 * A bar on a terminal; on anything else (CI logs, pipes) a plain line when the count moves, at
 * most every `plainEveryMs`, so logs stay short on a 100,000-record job.
 */
export function progressView(stream: NodeJS.WriteStream, plainEveryMs = 2_000): ProgressView {
  if (stream.isTTY) {
    const bar = new SingleBar({
      stream,
      format: 'records {bar} {value}/{total} ({percentage}%) eta {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
    });
    let started = false;
    return {
      update({ done, total }) {
        if (!started) {
          bar.start(total, done);
          started = true;
        } else {
          bar.setTotal(total);
          bar.update(done);
        }
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let lastDone = -1;
  let lastAt = 0;
  return {
    update(progress) {
      const now = Date.now();
      const finished = progress.done >= progress.total;
      if (progress.done === lastDone || (!finished && now - lastAt < plainEveryMs)) return;
      lastDone = progress.done;
      lastAt = now;
      stream.write(`progress ${describeProgress(progress)}\n`);
    },
    stop() {},
  };
}
