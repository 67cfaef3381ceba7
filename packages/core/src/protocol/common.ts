import { z } from 'zod';
import { PRECISIONS } from '../package/manifest.js';

/** The protocol version every JSON message carries as `v`; a message with another is refused (PROTOCOL_VERSION). */
export const PROTOCOL_VERSION = 1;

/** Largest JSON message accepted from the wire: 1 MiB (a deploy command with its manifest is a few KiB). */
export const MAX_JSON_MESSAGE_BYTES = 1024 * 1024;

/**
 * Deepest nesting of objects and arrays accepted in a JSON message (a deploy command with its manifest nests 5
 * levels). Deeper input is refused before it is parsed: a recursive walk of it (validation, `JSON.stringify`)
 * would overflow the stack.
 */
export const MAX_JSON_MESSAGE_DEPTH = 64;

/** The runtimes a device can run a model with. */
export const RUNTIMES = ['onnxruntime', 'tensorrt'] as const;
/** A runtime. */
export type Runtime = (typeof RUNTIMES)[number];

/** Zod schema of a model file precision (the manifest's `fp32 | fp16 | int8`). */
export const precisionSchema = z.enum(PRECISIONS);
/** Zod schema of a runtime name. */
export const runtimeSchema = z.enum(RUNTIMES);
/** Zod schema of a count or byte size: a safe integer >= 0. */
export const countSchema = z.int().min(0);
/** Zod schema of a duration or rate: a finite number >= 0. */
export const nonNegativeSchema = z.number().min(0);

/** Zod schema of a non-empty string of at most `max` characters (bounded so a peer cannot make us hold megabytes in one field). */
export function textSchema(max: number): z.ZodString {
  return z.string().min(1).max(max);
}

/** The `v` and `type` fields every JSON message starts with. */
export function envelopeShape<T extends string>(type: T): { v: z.ZodLiteral<typeof PROTOCOL_VERSION>; type: z.ZodLiteral<T> } {
  return { v: z.literal(PROTOCOL_VERSION), type: z.literal(type) };
}

/** An ISO 8601 time stamp: `ts` when given (a Date is converted), else now. */
export function timestamp(ts?: string | Date): string {
  if (ts === undefined) return new Date().toISOString();
  return ts instanceof Date ? ts.toISOString() : ts;
}

/**
 * The known fields of a message type minus `K`. Plain `Omit` would keep only the index signature that
 * loose objects carry; dropping it also makes a misspelt field in a builder call a type error.
 */
export type KnownFields<T, K extends PropertyKey> = {
  [P in keyof T as string extends P ? never : number extends P ? never : P extends K ? never : P]: T[P];
};
/** {@link KnownFields} over each variant of a union, so each command keeps its own fields. */
export type DistributiveKnownFields<T, K extends PropertyKey> = T extends unknown ? KnownFields<T, K> : never;
