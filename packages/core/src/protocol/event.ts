import { z } from 'zod';
import { countSchema, envelopeShape, textSchema, timestamp, type KnownFields } from './common.js';
import { commandIdSchema, deviceIdSchema, isoDateTimeSchema } from './ids.js';
import { validateWith } from './validate.js';

/** The states a command moves through on a device, in order; the last three are final. */
export const EVENT_STATES = [
  'accepted', 'downloading', 'verifying', 'activating', 'benchmarking', 'succeeded', 'failed', 'rolled_back',
] as const;
/** A command state. */
export type EventState = (typeof EVENT_STATES)[number];

/**
 * `devices/{id}/events` (agent →, QoS 1): one step of a command. `commandId` and `command` are null for
 * events the agent raises on its own (e.g. a refused message it could not attribute); `repeat` marks
 * the recorded outcome re-sent for a command id seen before. Unknown extra fields are kept.
 */
export const eventSchema = z.looseObject({
  ...envelopeShape('event'),
  deviceId: deviceIdSchema,
  commandId: commandIdSchema.nullable(),
  command: textSchema(64).nullable(),
  ts: isoDateTimeSchema,
  state: z.enum(EVENT_STATES),
  progress: z.looseObject({ bytes: countSchema, total: countSchema }).optional(),
  /** A stable error code (e.g. `PROTOCOL_SCHEMA`, `STORE_NO_SPACE`) when `state` is `failed`. */
  code: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'expected an error code in UPPER_SNAKE_CASE').optional(),
  message: z.string().max(4096).optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  repeat: z.boolean().optional(),
});
/** An event message. */
export type EventMessage = z.infer<typeof eventSchema>;
/** What {@link makeEvent} needs: `commandId` and `command` default to null, `ts` to now. */
export type EventFields = KnownFields<z.input<typeof eventSchema>, 'v' | 'type' | 'ts' | 'commandId' | 'command'> & {
  commandId?: string | null;
  command?: string | null;
  ts?: string | Date;
};

/**
 * Build and validate an event, filling `v`, `type`, `ts` (now) and null `commandId`/`command`.
 * @example
 * makeEvent({ deviceId: 'jetson-01', commandId: cmd.id, command: 'deploy', state: 'downloading', progress: { bytes: 0, total: 1e6 } });
 */
export function makeEvent(fields: EventFields): EventMessage {
  const value = { ...fields, v: 1, type: 'event', commandId: fields.commandId ?? null, command: fields.command ?? null, ts: timestamp(fields.ts) };
  return validateWith(eventSchema, value, 'event');
}
