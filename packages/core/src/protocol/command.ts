import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { adaptRecipeSchema, MAX_ADAPT_EPOCHS, MAX_ADAPT_TIME_BUDGET_SEC } from '../package/adapt-recipe.js';
import { PackageError } from '../package/errors.js';
import { parseManifest, type Manifest } from '../package/manifest.js';
import { envelopeShape, nonNegativeSchema, timestamp, type DistributiveKnownFields } from './common.js';
import { commandIdSchema, deviceIdSchema, isoDateTimeSchema, keyIdSchema, modelNameSchema, modelVersionSchema, sha256Schema } from './ids.js';
import { validateWith } from './validate.js';

/** The commands an agent understands. */
export const COMMANDS = ['ping', 'deploy', 'rollback', 'benchmark', 'adapt', 'adapt-cancel', 'adapt-upload'] as const;
/** A command name. */
export type CommandName = (typeof COMMANDS)[number];

/** Largest warm-up and measured iteration counts a command may ask for (a device is not a load generator). */
export const MAX_BENCH_ITERATIONS = 100_000;

// The recipe is shared with the package manifest's `adapt.recipe`, so it is defined in the package layer.
export { MAX_ADAPT_EPOCHS, MAX_ADAPT_TIME_BUDGET_SEC, adaptRecipeSchema };

/** Zod schema of a command signature: Ed25519 (base64, 64 bytes) by the key `keyId`; see signCommand. */
export const commandSignatureSchema = z.looseObject({
  keyId: keyIdSchema,
  sig: z
    .string()
    .regex(/^[A-Za-z0-9+/]{86}==$/, 'expected a base64 Ed25519 signature (64 bytes)'),
});
/** A command signature. */
export type CommandSignature = z.infer<typeof commandSignatureSchema>;

const benchOptionsShape = {
  warmup: z.int().min(0).max(MAX_BENCH_ITERATIONS).optional(),
  iterations: z.int().min(1).max(MAX_BENCH_ITERATIONS).optional(),
};

const commonShape = {
  ...envelopeShape('cmd'),
  /** Unique per command; agents act on an id once and answer a repeat with the recorded outcome. */
  id: commandIdSchema,
  deviceId: deviceIdSchema,
  ts: isoDateTimeSchema.optional(),
  rolloutId: commandIdSchema.optional(),
  signature: commandSignatureSchema.optional(),
};

// PackageError fields read `input.shape[2]` or `files[0].path`; zod wants the path as segments.
function fieldPath(field: string | undefined): (string | number)[] {
  if (field === undefined || field === '(root)') return [];
  const out: (string | number)[] = [];
  for (const m of field.matchAll(/([^.[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/g)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(`"${m[3]}"`) as string);
  }
  return out;
}

/**
 * The signed manifest inside a deploy, checked by core's parseManifest (strict: the signature covers
 * every field) so that a fault names its field, e.g. `deploy.manifest.input.shape[2]`.
 */
export const deployManifestSchema = z
  .unknown()
  .transform((value, ctx): Manifest => {
    try {
      return parseManifest(value);
    } catch (err) {
      if (!(err instanceof PackageError)) throw err;
      const message = err.message.replace(/^invalid manifest field [^:]+: (.*) \(allowed: (.*)\)$/s, 'expected $2, got $1');
      ctx.addIssue({ code: 'custom', message, path: fieldPath(err.field) });
      return z.NEVER;
    }
  })
  .meta({ type: 'object', description: 'the signed model manifest (manifest.json of the package), validated by parseManifest' });

/** Where the package bytes are: over HTTP (Range requests) and/or as MQTT chunks of `chunkSize` bytes. */
export const deployPackageSchema = z
  .looseObject({
    name: modelNameSchema,
    version: modelVersionSchema,
    /** SHA-256 of the package .tar. */
    sha256: sha256Schema,
    /** Size of the package .tar in bytes. */
    size: z.int().min(1),
    http: z
      .looseObject({
        url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).max(2048),
        headers: z.record(z.string().min(1).max(256), z.string().max(4096)).optional(),
      })
      .optional(),
    mqtt: z.looseObject({ chunkSize: z.int().min(1024).max(16 * 1024 * 1024) }).optional(),
  })
  .refine((p) => p.http !== undefined || p.mqtt !== undefined, { message: 'expected http or mqtt (where the bytes are)', path: ['http'] });

/** `ping`: the agent answers with an event and a fresh status. */
export const pingCommandSchema = z.looseObject({ ...commonShape, command: z.literal('ping') });

/**
 * `deploy`: fetch, verify and activate a package. A version older than the highest one of its name ever active
 * on the device needs `allowDowngrade: true` and a valid command signature.
 */
export const deployCommandSchema = z
  .looseObject({
    ...commonShape,
    command: z.literal('deploy'),
    package: deployPackageSchema,
    manifest: deployManifestSchema,
    gates: z.looseObject({ maxP95Ms: nonNegativeSchema.optional(), minFps: nonNegativeSchema.optional(), minMap50: z.number().min(0).max(1).optional() }).optional(),
    benchmark: z.looseObject(benchOptionsShape).optional(),
    allowDowngrade: z.boolean().optional(),
  })
  .superRefine((c, ctx) => {
    // The agent checks the package against the manifest again after download; a mismatch here is refused before any byte moves.
    for (const key of ['name', 'version'] as const) {
      if (c.manifest[key] !== c.package[key]) {
        ctx.addIssue({
          code: 'custom',
          message: `expected the manifest's ${key} ${JSON.stringify(c.manifest[key])}, got ${JSON.stringify(c.package[key])}`,
          path: ['package', key],
        });
      }
    }
  });

/** `rollback`: restore the store's previous version; refused when the active version is not `fromVersion`. */
export const rollbackCommandSchema = z.looseObject({ ...commonShape, command: z.literal('rollback'), fromVersion: modelVersionSchema.optional() });

/** `benchmark`: benchmark the active model and publish a bench report. */
export const benchmarkCommandSchema = z.looseObject({ ...commonShape, command: z.literal('benchmark'), ...benchOptionsShape });

/** A model the device already holds, by name and version (an `adapt` teacher or base). */
export const modelRefSchema = z.looseObject({ name: modelNameSchema, version: modelVersionSchema });

/**
 * `adapt`: start adaptation job `jobId` on the serving model (refused unless it is `base`, when given) with the
 * teacher package `teacher` (else the agent's configured one) and `recipe` overrides. An accepted result is
 * activated behind the usual gates unless `activate` is false (kept for review). Progress goes to `devices/{id}/adapt`.
 */
export const adaptCommandSchema = z.looseObject({
  ...commonShape,
  command: z.literal('adapt'),
  /** The job's id: named in its adapt messages and by `adapt-cancel`; a job id already known is not started again. */
  jobId: commandIdSchema,
  base: modelRefSchema.optional(),
  teacher: modelRefSchema.optional(),
  recipe: adaptRecipeSchema.optional(),
  /** Activate an accepted model (true, the default) or keep it for review (false). */
  activate: z.boolean().optional(),
});

/** `adapt-cancel`: cancel job `jobId` (a final job stays as it ended). */
export const adaptCancelCommandSchema = z.looseObject({ ...commonShape, command: z.literal('adapt-cancel'), jobId: commandIdSchema });

/**
 * `adapt-upload`: PUT the adapted package of succeeded job `jobId` (the device-signed `.tar`) to `url`, the fleet's
 * one-time upload URL, with `x-kd-sha256`; the agent answers `succeeded` with `result: {version, sha256, size}`.
 * The agent uploads only on this request; the fleet verifies the package against that device's pinned key.
 */
export const adaptUploadCommandSchema = z.looseObject({
  ...commonShape,
  command: z.literal('adapt-upload'),
  jobId: commandIdSchema,
  url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).max(2048),
});

/**
 * `devices/{id}/cmd` (→ agent, QoS 1): a command, discriminated on `command`. Unknown extra fields are
 * kept (forward compatibility, and the signature covers them); an unknown `command` is refused.
 * No field has a default, so parsing never adds a field and a parsed command still verifies.
 */
export const commandSchema = z.discriminatedUnion('command', [
  pingCommandSchema, deployCommandSchema, rollbackCommandSchema, benchmarkCommandSchema, adaptCommandSchema, adaptCancelCommandSchema,
  adaptUploadCommandSchema,
]);
/** A command. */
export type CommandMessage = z.infer<typeof commandSchema>;
/** A ping command. */
export type PingCommand = z.infer<typeof pingCommandSchema>;
/** A deploy command. */
export type DeployCommand = z.infer<typeof deployCommandSchema>;
/** A rollback command. */
export type RollbackCommand = z.infer<typeof rollbackCommandSchema>;
/** A benchmark command. */
export type BenchmarkCommand = z.infer<typeof benchmarkCommandSchema>;
/** An adapt command. */
export type AdaptCommand = z.infer<typeof adaptCommandSchema>;
/** An adapt-cancel command. */
export type AdaptCancelCommand = z.infer<typeof adaptCancelCommandSchema>;
/** An adapt-upload command. */
export type AdaptUploadCommand = z.infer<typeof adaptUploadCommandSchema>;
/** The recipe overrides of an adapt command. */
export type AdaptRecipe = z.infer<typeof adaptRecipeSchema>;
/** What {@link makeCommand} needs: a command without `v` and `type`; `id` (a UUID) and `ts` (now) optional. */
export type CommandFields = DistributiveKnownFields<z.input<typeof commandSchema>, 'v' | 'type' | 'id' | 'ts'> & { id?: string; ts?: string | Date };

/** The name a command message is reported under in errors: its `command` when known, else `cmd`. */
export function commandRoot(value: unknown): string {
  const command = typeof value === 'object' && value !== null ? (value as { command?: unknown }).command : undefined;
  return typeof command === 'string' && (COMMANDS as readonly string[]).includes(command) ? command : 'cmd';
}

/**
 * Build and validate a command, filling `v`, `type`, `id` (a random UUID unless given) and `ts` (now).
 * @example
 * const cmd = makeCommand({ command: 'benchmark', deviceId: 'jetson-01', iterations: 200 });
 */
export function makeCommand(fields: CommandFields): CommandMessage {
  const value = { ...fields, v: 1, type: 'cmd', id: fields.id ?? randomUUID(), ts: timestamp(fields.ts) };
  return validateWith(commandSchema, value, commandRoot(value));
}
