/**
 * Base class of every error kd-edge throws on purpose. `code` is stable and machine-readable
 * (for example `'DATASET_NOT_FOUND'`); the message is for people.
 */
export class KdEdgeError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Invalid configuration value: names the field, the value and what is allowed. */
export class ConfigError extends KdEdgeError {
  constructor(field: string, value: unknown, allowed: string) {
    super('CONFIG_INVALID', `invalid ${field}: ${JSON.stringify(value)} (allowed: ${allowed})`);
  }
}
