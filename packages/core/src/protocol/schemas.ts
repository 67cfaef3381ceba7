import { z } from 'zod';
import type { Manifest } from '../package/manifest.js';
import { adaptSchema, type AdaptMessage } from './adapt.js';
import { benchSchema, type BenchMessage } from './bench.js';
import { chunkHeaderSchema } from './chunk-frame.js';
import { chunkRequestSchema, type ChunkRequestMessage } from './chunk-request.js';
import { commandSchema, type CommandMessage } from './command.js';
import { detectionsSchema, type DetectionsMessage } from './detections.js';
import { eventSchema, type EventMessage } from './event.js';
import { statusSchema, type StatusMessage } from './status.js';
import type { MessageKind } from './topics.js';

/** The typed value {@link parseMessage} returns for each message kind. */
export interface MessageTypes {
  status: StatusMessage;
  cmd: CommandMessage;
  event: EventMessage;
  bench: BenchMessage;
  adapt: AdaptMessage;
  detections: DetectionsMessage;
  'chunk-request': ChunkRequestMessage;
  manifest: Manifest;
}

/** The zod schema of each JSON message kind that has `v` and `type` (the manifest has its own parser). */
export const MESSAGE_SCHEMAS = {
  status: statusSchema,
  cmd: commandSchema,
  event: eventSchema,
  bench: benchSchema,
  adapt: adaptSchema,
  detections: detectionsSchema,
  'chunk-request': chunkRequestSchema,
} as const satisfies Record<Exclude<MessageKind, 'manifest'>, z.ZodType>;

/**
 * JSON Schema (draft 2020-12) of every protocol message and of the chunk frame header, for docs and
 * non-TypeScript peers. Checks JSON Schema cannot say (semver, real calendar dates, the manifest's own
 * rules, cross-field rules) are only in the zod schemas, which stay the reference.
 */
export function protocolJsonSchemas(): Record<Exclude<MessageKind, 'manifest'> | 'chunk-header', Record<string, unknown>> {
  const convert = (schema: z.ZodType): Record<string, unknown> => z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    status: convert(statusSchema),
    cmd: convert(commandSchema),
    event: convert(eventSchema),
    bench: convert(benchSchema),
    adapt: convert(adaptSchema),
    detections: convert(detectionsSchema),
    'chunk-request': convert(chunkRequestSchema),
    'chunk-header': convert(chunkHeaderSchema),
  };
}
