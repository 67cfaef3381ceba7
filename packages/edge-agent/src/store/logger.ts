/** The levelled logger the agent's long-running parts take; every method is optional to call and silent by default. */
export interface Logger {
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

const noop = (): void => {};

/** A logger that drops everything: the default when none is given. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };
