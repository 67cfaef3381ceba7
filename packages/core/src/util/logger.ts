/**
 * The levelled logger every kd-edge library part takes (any object with these four methods fits: console, pino).
 * Libraries never print on their own; the CLIs decide where lines go.
 */
export interface Logger {
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

const noop = (): void => {};

/** A logger that drops everything: the default when none is given. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/** Logger levels, least severe first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
/** A logger level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The CLIs' logger: one `time level message` line per call on stderr (or one JSON object with `json`), from `level` up.
 * @example const log = stderrLogger('warn'); log.warn('broker unreachable');
 */
export function stderrLogger(level: LogLevel = 'info', json = false): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const line = (l: LogLevel) => (msg: string): void => {
    if (LOG_LEVELS.indexOf(l) < min) return;
    const time = new Date().toISOString();
    process.stderr.write(json ? `${JSON.stringify({ time, level: l, msg })}\n` : `${time} ${l.padEnd(5)} ${msg}\n`);
  };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}
