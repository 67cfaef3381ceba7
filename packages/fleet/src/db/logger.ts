/** The levelled logger kd-fleet's long-running parts take; silent unless one is given. */
export interface FleetLogger {
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

const noop = (): void => {};

/** A logger that drops everything: the default when none is given. */
export const silentFleetLogger: FleetLogger = { debug: noop, info: noop, warn: noop, error: noop };
