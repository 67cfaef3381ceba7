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
