/** The levelled logger runtime and bench objects accept (any object with these four methods); default silent. */
export interface RuntimeLogger {
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

const noop = (): void => {};

/** A logger that drops everything. */
export const SILENT_LOGGER: RuntimeLogger = { debug: noop, info: noop, warn: noop, error: noop };
