import { z } from 'zod';
import { countSchema, envelopeShape, nonNegativeSchema, precisionSchema, runtimeSchema, textSchema, timestamp, type KnownFields } from './common.js';
import { deviceIdSchema, isoDateTimeSchema, modelNameSchema, modelVersionSchema, sha256Schema } from './ids.js';
import { validateWith } from './validate.js';

/** The device's hardware and software stack, as the agent detected it at start. */
export const hardwareSchema = z.looseObject({
  arch: textSchema(32),
  platform: textSchema(32),
  cpus: countSchema,
  memTotalMb: nonNegativeSchema,
  cpuModel: textSchema(256).optional(),
  /** Null off Jetson. */
  jetson: z.looseObject({ model: textSchema(256), l4t: textSchema(64).optional(), jetpack: textSchema(64).optional() }).nullable().optional(),
  tensorrt: textSchema(64).nullable().optional(),
  gpu: textSchema(256).nullable().optional(),
  ort: z.looseObject({ version: textSchema(64), executionProviders: z.array(textSchema(64)).max(32) }),
});
/** The device's hardware and software stack. */
export type Hardware = z.infer<typeof hardwareSchema>;

/** A model the device holds: identity of the package plus how it runs. */
export const activeModelSchema = z.looseObject({
  name: modelNameSchema,
  version: modelVersionSchema,
  /** SHA-256 of the package .tar. */
  sha256: sha256Schema,
  precision: precisionSchema.optional(),
  runtime: runtimeSchema.optional(),
  executionProvider: textSchema(64).optional(),
});
/** A model the device holds. */
export type ActiveModel = z.infer<typeof activeModelSchema>;

/**
 * `devices/{id}/status` (agent →, retained): online flag, agent version, hardware, active and previous
 * model, free disk, serving rate. The last will is the short form `{v, type, deviceId, online: false, ts}`.
 * Unknown extra fields are kept (forward compatibility); known ones are strict.
 */
export const statusSchema = z.looseObject({
  ...envelopeShape('status'),
  deviceId: deviceIdSchema,
  online: z.boolean(),
  ts: isoDateTimeSchema,
  agentVersion: textSchema(64).optional(),
  hardware: hardwareSchema.optional(),
  activeModel: activeModelSchema.nullable().optional(),
  previousModel: activeModelSchema.nullable().optional(),
  freeDiskMb: nonNegativeSchema.optional(),
  serving: z.looseObject({ fps: nonNegativeSchema, frames: countSchema }).optional(),
});
/** A status message. */
export type StatusMessage = z.infer<typeof statusSchema>;
/** What {@link makeStatus} needs: a status without `v` and `type`, `ts` optional (now). */
export type StatusFields = KnownFields<z.input<typeof statusSchema>, 'v' | 'type' | 'ts'> & { ts?: string | Date };

/**
 * Build and validate a status message, filling `v`, `type` and `ts` (now unless given).
 * @example
 * const status = makeStatus({ deviceId: 'jetson-01', online: true, agentVersion: '0.1.0' });
 */
export function makeStatus(fields: StatusFields): StatusMessage {
  return validateWith(statusSchema, { ...fields, v: 1, type: 'status', ts: timestamp(fields.ts) }, 'status');
}

/**
 * The last-will status a device registers when it connects: `online: false` with the connect time
 * as `ts` (the broker publishes it later, unchanged, so `ts` is when the will was set, not when it fired).
 */
export function makeOfflineStatus(deviceId: string, ts?: string | Date): StatusMessage {
  return makeStatus({ deviceId, online: false, ts });
}
