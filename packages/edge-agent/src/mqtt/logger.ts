/** The levelled logger the MQTT layer writes to; any object with these four methods (pino, console) fits. */
export interface MqttLogger {
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

const noop = (): void => {};

/** The default logger: says nothing, because libraries never print on their own. */
export const SILENT_LOGGER: MqttLogger = { debug: noop, info: noop, warn: noop, error: noop };
