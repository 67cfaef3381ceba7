import { z } from 'zod';
import { isIsoDateTime } from '../package/manifest.js';
import { isSemver } from '../package/semver.js';

/** A fleet id: a letter or digit, then up to 63 letters, digits, `_` or `-` (safe in a topic and a file name). */
export const FLEET_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** A device id: the same alphabet as a fleet id. */
export const DEVICE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** A model name: the manifest's slug (lower-case letters, digits, `.`, `_`, `-`; at most 64 characters). */
export const MODEL_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/**
 * A command id or rollout id: a letter or digit, then up to 127 letters, digits, `.`, `_`, `:` or `-`.
 * Narrower than "any string" because agents key their idempotency records (and files) by it.
 */
export const COMMAND_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** A SHA-256 as 64 lower-case hex characters. */
export const SHA256_RE = /^[0-9a-f]{64}$/;
/** A signing key id (see keyIdOf): 16 lower-case hex characters. */
export const KEY_ID_RE = /^[0-9a-f]{16}$/;

/** Longest version string accepted anywhere in the protocol. */
export const MAX_VERSION_LENGTH = 128;

/** Whether `text` is a valid fleet id. */
export function isFleetId(text: unknown): text is string {
  return typeof text === 'string' && FLEET_ID_RE.test(text);
}

/** Whether `text` is a valid device id. */
export function isDeviceId(text: unknown): text is string {
  return typeof text === 'string' && DEVICE_ID_RE.test(text);
}

/** Whether `text` is a valid model name. */
export function isModelName(text: unknown): text is string {
  return typeof text === 'string' && MODEL_NAME_RE.test(text);
}

/** Whether `text` is a semver 2.0.0 version short enough for the protocol. */
export function isModelVersion(text: unknown): text is string {
  return typeof text === 'string' && text.length <= MAX_VERSION_LENGTH && isSemver(text);
}

/** Zod schema of a fleet id. */
export const fleetIdSchema = z.string().regex(FLEET_ID_RE, 'expected a fleet id (A-Z, a-z, 0-9, "_", "-"; at most 64 characters)');
/** Zod schema of a device id. */
export const deviceIdSchema = z.string().regex(DEVICE_ID_RE, 'expected a device id (A-Z, a-z, 0-9, "_", "-"; at most 64 characters)');
/** Zod schema of a model name. */
export const modelNameSchema = z.string().regex(MODEL_NAME_RE, 'expected a model name (a-z, 0-9, ".", "_", "-"; at most 64 characters)');
/** Zod schema of a model version (semver 2.0.0, pre-release and build metadata allowed). */
export const modelVersionSchema = z
  .string()
  .max(MAX_VERSION_LENGTH)
  .refine(isSemver, 'expected a semver 2.0.0 version such as 1.2.3, 1.2.3-rc.1 or 1.2.3+build.5')
  .meta({ description: 'semver 2.0.0' });
/** Zod schema of a command id or rollout id. */
export const commandIdSchema = z.string().regex(COMMAND_ID_RE, 'expected an id of 1-128 characters (A-Z, a-z, 0-9, ".", "_", ":", "-")');
/** Zod schema of a lower-case hex SHA-256. */
export const sha256Schema = z.string().regex(SHA256_RE, 'expected 64 lower-case hex characters');
/** Zod schema of a key id. */
export const keyIdSchema = z.string().regex(KEY_ID_RE, 'expected 16 lower-case hex characters');
/** Zod schema of an ISO 8601 date-time with seconds and a zone (`2026-05-01T12:00:00.000Z`). */
export const isoDateTimeSchema = z
  .string()
  .max(40)
  .refine(isIsoDateTime, 'expected an ISO 8601 date-time with seconds and a zone, such as 2026-05-01T12:00:00.000Z')
  .meta({ format: 'date-time' });
