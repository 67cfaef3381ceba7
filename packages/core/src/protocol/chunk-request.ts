import { z } from 'zod';
import { envelopeShape, type KnownFields } from './common.js';
import { deviceIdSchema, modelNameSchema, modelVersionSchema, sha256Schema } from './ids.js';
import { validateWith } from './validate.js';

/** Most chunk indexes one request may name, so one message cannot ask the fleet for a whole package at once. */
export const MAX_CHUNK_REQUEST_INDEXES = 64;

/**
 * `devices/{id}/chunks/req` (agent →, QoS 1): ask the fleet to publish chunks of a package on
 * `models/{name}/{version}/chunks`. Indexes are distinct; the fleet answers each with one chunk frame.
 * Unknown extra fields are kept.
 */
export const chunkRequestSchema = z.looseObject({
  ...envelopeShape('chunk-request'),
  deviceId: deviceIdSchema,
  name: modelNameSchema,
  version: modelVersionSchema,
  /** SHA-256 of the package .tar. */
  sha256: sha256Schema,
  chunkSize: z.int().min(1),
  indexes: z
    .array(z.int().min(0))
    .min(1)
    .max(MAX_CHUNK_REQUEST_INDEXES)
    .refine((xs) => new Set(xs).size === xs.length, 'expected distinct indexes'),
});
/** A chunk request. */
export type ChunkRequestMessage = z.infer<typeof chunkRequestSchema>;
/** What {@link makeChunkRequest} needs: a chunk request without `v` and `type`. */
export type ChunkRequestFields = KnownFields<z.input<typeof chunkRequestSchema>, 'v' | 'type'>;

/** Build and validate a chunk request, filling `v` and `type`. */
export function makeChunkRequest(fields: ChunkRequestFields): ChunkRequestMessage {
  return validateWith(chunkRequestSchema, { ...fields, v: 1, type: 'chunk-request' }, 'chunk-request');
}
