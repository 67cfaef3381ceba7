import { z } from 'zod';
import { countSchema, envelopeShape, nonNegativeSchema, precisionSchema, runtimeSchema, textSchema, timestamp, type KnownFields } from './common.js';
import { keyIdOf } from '../package/keys.js';
import { deviceIdSchema, isoDateTimeSchema, keyIdSchema, modelNameSchema, modelVersionSchema, sha256Schema } from './ids.js';
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
  /** The package path of the model file that serves (one package carries a file per target; issue 17). */
  file: textSchema(256).optional(),
});
/** A model the device holds. */
export type ActiveModel = z.infer<typeof activeModelSchema>;

/**
 * An Ed25519 public key in PEM (SPKI), as `keyPair.publicKeyPem` writes it: the armour of a public key only, so a
 * private key sent by mistake is refused rather than stored by the fleet.
 */
const PUBLIC_KEY_PEM_RE = /^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]{1,400}-----END PUBLIC KEY-----\r?\n?$/;

/**
 * The device's own Ed25519 public key (made by the agent at first start; it signs the device's own adapted
 * packages). `keyId` must be the id of `publicKeyPem` ({@link keyIdOf}): checked here, so both ends agree on it.
 */
export const deviceKeySchema = z
  .looseObject({
    keyId: keyIdSchema,
    publicKeyPem: z.string().max(512).regex(PUBLIC_KEY_PEM_RE, 'expected an Ed25519 public key in PEM ("-----BEGIN PUBLIC KEY-----")'),
  })
  .superRefine((k, ctx) => {
    let id: string;
    try {
      id = keyIdOf(k.publicKeyPem);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `expected an Ed25519 public key in PEM, got one that does not parse: ${(err as Error).message}`, path: ['publicKeyPem'] });
      return;
    }
    if (id !== k.keyId) ctx.addIssue({ code: 'custom', message: `expected the id of publicKeyPem, ${id}, got ${JSON.stringify(k.keyId)}`, path: ['keyId'] });
  });
/** The device's own public key and its id. */
export type DeviceKeyInfo = z.infer<typeof deviceKeySchema>;

/**
 * `devices/{id}/status` (agent →, retained): online flag, agent version, hardware, active and previous
 * model, free disk, serving rate, the device's own public key. The last will is the short form `{v, type, deviceId, online: false, ts}`.
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
  /** Absent from agents older than issue 16 and from the last will. */
  deviceKey: deviceKeySchema.optional(),
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
