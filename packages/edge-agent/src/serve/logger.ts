/** The levelled logger the serve objects take; every method is optional to call and the default is silent. */
export interface ServeLogger {
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

const noop = (): void => {};

/** A logger that drops everything (libraries never print on their own). */
export const SILENT_LOGGER: ServeLogger = { debug: noop, info: noop, warn: noop, error: noop };
