import { type Logger, pino } from 'pino';

/**
 * Structured JSON logs. Learners are named by program and key only; emails and usernames never
 * reach the logs (the redact list is a safety net for objects passed whole).
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'program-enrollments' },
    redact: { paths: ['email', '*.email', 'username', '*.username', 'password', '*.password'], censor: '[redacted]' },
  });
}

export type { Logger };
