import { z } from 'zod';
import { parseAdaptedVersion } from './adapt-version.js';
import { modelRefSchema } from './command.js';
import { countSchema, envelopeShape, textSchema, timestamp, type KnownFields } from './common.js';
import { commandIdSchema, deviceIdSchema, isoDateTimeSchema, modelVersionSchema } from './ids.js';
import { validateWith } from './validate.js';

/**
 * The states of an adaptation job, in order; the last five are final. `rejected`: the job finished and the
 * adapted model did not pass acceptance (or a gate); `succeeded`: accepted, packaged, and activated or kept for review.
 */
export const ADAPT_STATES = [
  'queued', 'labelling', 'training', 'evaluating', 'exporting', 'packaging', 'activating',
  'succeeded', 'rejected', 'failed', 'cancelled',
] as const;
/** An adaptation job state. */
export type AdaptState = (typeof ADAPT_STATES)[number];
/** The final job states: after one of them the job's message no longer changes. */
export const FINAL_ADAPT_STATES: readonly AdaptState[] = ['succeeded', 'rejected', 'failed', 'cancelled'];

const share = z.number().min(0).max(1);
/** mAP50 and mAP50-95 (`map`, as in bench reports) of one model on one set. */
const figuresSchema = z.looseObject({ map50: share, map: share });
/** One evaluation set: its size, and the serving (`before`) and adapted (`after`) model's figures as far as known. */
const evaluationSetSchema = z.looseObject({ images: countSchema.optional(), before: figuresSchema.optional(), after: figuresSchema.optional() });

/**
 * `devices/{id}/adapt` (agent →, QoS 1, retained): the state of the device's latest adaptation job, re-published
 * whole at each step, so a late subscriber sees where it stands. `commandId` is the `adapt` command that started
 * it, null for a scheduled job. `version` is the adapted version ({@link adaptedVersion} of `base`'s base version
 * on this device) once it is named. Unknown extra fields are kept.
 */
export const adaptSchema = z
  .looseObject({
    ...envelopeShape('adapt'),
    deviceId: deviceIdSchema,
    jobId: commandIdSchema,
    commandId: commandIdSchema.nullable(),
    ts: isoDateTimeSchema,
    state: z.enum(ADAPT_STATES),
    /** The serving model the job adapts. */
    base: modelRefSchema,
    teacher: modelRefSchema.optional(),
    version: modelVersionSchema.optional(),
    /** Frames done of all, while labelling. */
    progress: z.looseObject({ done: countSchema, total: countSchema }).optional(),
    /** Frames the job adapts on (`used`) and holds out to score it (`holdout`). */
    frames: z.looseObject({ used: countSchema, holdout: countSchema }).optional(),
    epoch: countSchema.optional(),
    epochs: z.int().min(1).optional(),
    /** The last epoch's mean losses by name (`box`, `obj`, `cls`, `kd`, …). */
    losses: z.record(textSchema(64), z.number()).optional(),
    /** Hold-out figures (scored against the teacher's labels) and, with the package's `val/`, labelled ones. */
    holdout: evaluationSetSchema.optional(),
    val: evaluationSetSchema.optional(),
    accepted: z.boolean().optional(),
    /** One line per acceptance check or gate, passed or not. */
    reasons: z.array(textSchema(512)).max(32).optional(),
    /** With `succeeded`: whether the adapted model now serves (false: kept for review). */
    activated: z.boolean().optional(),
    /** A stable error code (e.g. `ADAPT_TOO_FEW_FRAMES`) when `state` is `failed`. */
    code: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'expected an error code in UPPER_SNAKE_CASE').optional(),
    message: z.string().max(4096).optional(),
  })
  .superRefine((m, ctx) => {
    if (m.epoch !== undefined && m.epochs !== undefined && m.epoch > m.epochs) {
      ctx.addIssue({ code: 'custom', message: `expected at most epochs (${m.epochs}), got ${m.epoch}`, path: ['epoch'] });
    }
    if (m.progress !== undefined && m.progress.done > m.progress.total) {
      ctx.addIssue({ code: 'custom', message: `expected at most progress.total (${m.progress.total}), got ${m.progress.done}`, path: ['progress', 'done'] });
    }
    if (m.state === 'failed' && m.code === undefined) ctx.addIssue({ code: 'custom', message: 'expected an error code with state "failed", got missing', path: ['code'] });
    if (m.state === 'succeeded' && m.accepted !== true) ctx.addIssue({ code: 'custom', message: `expected true with state "succeeded", got ${String(m.accepted)}`, path: ['accepted'] });
    if (m.state === 'rejected' && m.accepted === true) ctx.addIssue({ code: 'custom', message: 'expected false or missing with state "rejected", got true', path: ['accepted'] });
    if (m.state === 'succeeded' && m.version === undefined) ctx.addIssue({ code: 'custom', message: 'expected the adapted version with state "succeeded", got missing', path: ['version'] });
    if (m.version !== undefined) {
      // An adapted version names its own device and the released version under the serving one (itself maybe an adaptation).
      const root = parseAdaptedVersion(m.base.version)?.base ?? m.base.version;
      const parsed = parseAdaptedVersion(m.version);
      if (parsed === undefined || parsed.base !== root || parsed.deviceId !== m.deviceId) {
        ctx.addIssue({ code: 'custom', message: `expected an adaptation of ${root} on ${m.deviceId} (${root}${root.includes('+') ? '.' : '+'}adapt.…), got ${JSON.stringify(m.version)}`, path: ['version'] });
      }
    }
  });
/** An adapt message. */
export type AdaptMessage = z.infer<typeof adaptSchema>;
/** What {@link makeAdapt} needs: `commandId` defaults to null, `ts` to now. */
export type AdaptFields = KnownFields<z.input<typeof adaptSchema>, 'v' | 'type' | 'ts' | 'commandId'> & { commandId?: string | null; ts?: string | Date };

/**
 * Build and validate an adapt message, filling `v`, `type`, `ts` (now) and a null `commandId`.
 * @example
 * makeAdapt({ deviceId: 'cam-01', jobId: 'adapt-7', commandId: cmd.id, state: 'training', base: { name: 'shapes', version: '1.0.0' }, epoch: 3, epochs: 10 });
 */
export function makeAdapt(fields: AdaptFields): AdaptMessage {
  return validateWith(adaptSchema, { ...fields, v: 1, type: 'adapt', commandId: fields.commandId ?? null, ts: timestamp(fields.ts) }, 'adapt');
}
