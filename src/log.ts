import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON logs on stdout; secrets are redacted wherever they might be attached to an event. */
export function createLogger(name = 'capstan', level = process.env.CAPSTAN_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'credentials', '*.credentials', 'joinToken', '*.joinToken', 'init', '*.init'],
      censor: '[redacted]',
    },
  });
}

/** For tests and tools that want no output. */
export const silentLogger: Logger = pino({ level: 'silent' });
