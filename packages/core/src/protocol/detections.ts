import { z } from 'zod';
import { countSchema, envelopeShape, nonNegativeSchema, textSchema, timestamp, type KnownFields } from './common.js';
import { deviceIdSchema, isoDateTimeSchema, modelNameSchema, modelVersionSchema } from './ids.js';
import { validateWith } from './validate.js';

/** Most detections one message may carry; a frame with more is cut to the best-scoring ones by the sender. */
export const MAX_DETECTIONS_PER_MESSAGE = 1000;

/** One detection: class id, optional class name, score in [0, 1], box `[x1, y1, x2, y2]` in source-frame pixels. */
export const detectionSchema = z.looseObject({
  cls: countSchema,
  name: textSchema(256).optional(),
  score: z.number().min(0).max(1),
  box: z.tuple([z.number(), z.number(), z.number(), z.number()]),
});
/** One detection. */
export type DetectionItem = z.infer<typeof detectionSchema>;

/**
 * `devices/{id}/detections` (agent →, QoS 0, rate-limited): the detections of one frame. `skipped`
 * counts frames the rate limiter dropped since the previous message. Unknown extra fields are kept.
 */
export const detectionsSchema = z.looseObject({
  ...envelopeShape('detections'),
  deviceId: deviceIdSchema,
  ts: isoDateTimeSchema,
  frame: z.looseObject({ source: textSchema(256), width: z.int().min(1), height: z.int().min(1), seq: countSchema }),
  model: z.looseObject({ name: modelNameSchema, version: modelVersionSchema }),
  latencyMs: nonNegativeSchema,
  detections: z.array(detectionSchema).max(MAX_DETECTIONS_PER_MESSAGE),
  skipped: countSchema.optional(),
});
/** A detections message. */
export type DetectionsMessage = z.infer<typeof detectionsSchema>;
/** What {@link makeDetections} needs: a detections message without `v` and `type`, `ts` optional (now). */
export type DetectionsFields = KnownFields<z.input<typeof detectionsSchema>, 'v' | 'type' | 'ts'> & { ts?: string | Date };

/** Build and validate a detections message, filling `v`, `type` and `ts` (now unless given). */
export function makeDetections(fields: DetectionsFields): DetectionsMessage {
  return validateWith(detectionsSchema, { ...fields, v: 1, type: 'detections', ts: timestamp(fields.ts) }, 'detections');
}
