import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; secrets in known places are redacted. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'orgsync' },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', '*.secret', '*.token'],
      censor: '[redacted]',
    },
  });
}
