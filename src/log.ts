import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stdout (or `destination`). Secrets in known places are redacted, and
 * what is logged at `info` and above carries no secret and no personal data: the access log
 * has paths without their query strings (filters name people, invitation links carry tokens),
 * and an unsent email's link is logged at `debug` only.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'orgsync' },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', '*.secret', '*.token'],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
