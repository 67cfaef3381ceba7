import { z } from 'zod';
import { countSchema, envelopeShape, nonNegativeSchema, precisionSchema, runtimeSchema, textSchema, timestamp, type KnownFields } from './common.js';
import { commandIdSchema, deviceIdSchema, isoDateTimeSchema, modelNameSchema, modelVersionSchema, sha256Schema } from './ids.js';
import { validateWith } from './validate.js';

const numberMap = z.record(textSchema(64), z.number());

/** Latency statistics in milliseconds. */
export const latencyStatsSchema = z.looseObject({
  min: nonNegativeSchema,
  mean: nonNegativeSchema,
  p50: nonNegativeSchema,
  p90: nonNegativeSchema,
  p95: nonNegativeSchema,
  p99: nonNegativeSchema,
  max: nonNegativeSchema,
});

/** Jetson tegrastats figures over the benchmark: mean power per rail (mW), temperature per zone (°C). */
export const tegrastatsSummarySchema = z.looseObject({
  samples: countSchema,
  totalPowerMw: nonNegativeSchema.optional(),
  powerMw: numberMap,
  tempC: numberMap,
  gpuLoadPct: z.number().min(0).max(100).optional(),
  ramUsedMb: nonNegativeSchema.optional(),
});

/**
 * `devices/{id}/bench` (agent →, QoS 1): a benchmark report of one model on one runtime. `commandId`
 * is null (or absent) for a benchmark the agent ran on its own, e.g. after activation. Unknown extra
 * fields are kept.
 */
export const benchSchema = z.looseObject({
  ...envelopeShape('bench'),
  deviceId: deviceIdSchema,
  commandId: commandIdSchema.nullable().optional(),
  ts: isoDateTimeSchema,
  model: z.looseObject({
    name: modelNameSchema,
    version: modelVersionSchema,
    sha256: sha256Schema,
    /** The package path of the model file that ran. */
    file: textSchema(256),
    precision: precisionSchema.optional(),
  }),
  runtime: runtimeSchema,
  executionProvider: textSchema(64),
  input: z.looseObject({ name: textSchema(256), shape: z.array(z.int().min(0)).min(1).max(8) }),
  batch: z.int().min(1),
  warmup: countSchema,
  iterations: z.int().min(1),
  latencyMs: latencyStatsSchema,
  throughputFps: nonNegativeSchema,
  splitMs: z.looseObject({ pre: nonNegativeSchema, infer: nonNegativeSchema, post: nonNegativeSchema }),
  rssMb: nonNegativeSchema,
  cpuLoadPct: nonNegativeSchema,
  tegrastats: tegrastatsSummarySchema.optional(),
  accuracy: z.looseObject({ map50: z.number().min(0).max(1), map: z.number().min(0).max(1), images: countSchema }).optional(),
});
/** A bench report. */
export type BenchMessage = z.infer<typeof benchSchema>;
/** Latency statistics of a bench report. */
export type BenchLatency = z.infer<typeof latencyStatsSchema>;
/** The tegrastats part of a bench report. */
export type TegrastatsSummary = z.infer<typeof tegrastatsSummarySchema>;
/** What {@link makeBench} needs: a bench report without `v` and `type`, `ts` optional (now). */
export type BenchFields = KnownFields<z.input<typeof benchSchema>, 'v' | 'type' | 'ts'> & { ts?: string | Date };

/** Build and validate a bench report, filling `v`, `type` and `ts` (now unless given). */
export function makeBench(fields: BenchFields): BenchMessage {
  return validateWith(benchSchema, { ...fields, v: 1, type: 'bench', ts: timestamp(fields.ts) }, 'bench');
}
