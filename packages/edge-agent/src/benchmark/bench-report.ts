import type { BenchMessage } from '@kd-edge/core';
import type { TrtexecPerformance } from '../runtime/trtexec-report.js';
import { trtexecLatencyMs } from '../runtime/trtexec-report.js';
import type { BenchmarkResult } from './benchmark-runner.js';
import type { TegrastatsSummary } from './tegrastats-monitor.js';


/** What {@link buildBenchReport} needs besides the measurements. */
export interface BenchReportInput {
  deviceId: string;
  commandId?: string | null;
  /** Default: now. */
  ts?: Date | string;
  model: BenchMessage['model'];
  runtime: BenchMessage['runtime'];
  executionProvider: string;
  input: { name: string; shape: readonly number[] };
  result: Omit<BenchmarkResult, 'wallMs'> & { wallMs?: number };
  accuracy?: BenchMessage['accuracy'];
}

/**
 * Assembles the `bench` message from a benchmark result (ORT via {@link runBenchmark}, or TensorRT via
 * {@link benchResultFromTrtexec}). Tegrastats figures are included only when samples were taken.
 * @example publish(benchTopic, JSON.stringify(buildBenchReport({ deviceId, model, runtime: 'onnxruntime', … })))
 */
export function buildBenchReport(input: BenchReportInput): BenchMessage {
  const r = input.result;
  const ts = input.ts === undefined ? new Date().toISOString() : input.ts instanceof Date ? input.ts.toISOString() : input.ts;
  const model: BenchMessage['model'] = {
    name: input.model.name,
    version: input.model.version,
    sha256: input.model.sha256,
    file: input.model.file,
  };
  if (input.model.precision !== undefined) model.precision = input.model.precision;
  const msg: BenchMessage = {
    v: 1,
    type: 'bench',
    deviceId: input.deviceId,
    ts,
    model,
    runtime: input.runtime,
    executionProvider: input.executionProvider,
    input: { name: input.input.name, shape: [...input.input.shape] },
    batch: r.batch,
    warmup: r.warmup,
    iterations: r.iterations,
    latencyMs: { ...r.latencyMs },
    throughputFps: r.throughputFps,
    splitMs: { ...r.splitMs },
    rssMb: r.rssMb,
    cpuLoadPct: r.cpuLoadPct,
  };
  if (input.commandId !== undefined) msg.commandId = input.commandId;
  if (r.tegrastats !== undefined && r.tegrastats.samples > 0) msg.tegrastats = r.tegrastats;
  if (input.accuracy !== undefined) msg.accuracy = { ...input.accuracy };
  return msg;
}

/** Options of {@link benchResultFromTrtexec}: what trtexec's summary does not say. */
export interface TrtexecResultOptions {
  /** The `--warmUp` given (trtexec warms up by time; report what was asked). */
  warmup: number;
  /** Iterations asked for; used when the summary has no walltime to count them from. */
  iterations: number;
  batch?: number;
  /** Resident memory and CPU load the caller measured around trtexec (the agent cannot see inside it). */
  rssMb: number;
  cpuLoadPct: number;
  tegrastats?: TegrastatsSummary;
}

/**
 * A trtexec summary as a {@link BenchmarkResult}: latency is trtexec's host latency (missing percentiles bounded from
 * above, see `trtexecLatencyMs`); the split is H2D copy / GPU compute / D2H copy, the closest trtexec has to pre/infer/post.
 */
export function benchResultFromTrtexec(perf: TrtexecPerformance, options: TrtexecResultOptions): BenchmarkResult {
  const { estimated: _estimated, ...latencyMs } = trtexecLatencyMs(perf);
  const batch = options.batch ?? 1;
  const counted =
    perf.totalHostWalltimeS !== undefined ? Math.round(perf.throughputQps * perf.totalHostWalltimeS) : options.iterations;
  const result: BenchmarkResult = {
    warmup: options.warmup,
    iterations: counted > 0 ? counted : options.iterations,
    batch,
    latencyMs,
    throughputFps: perf.throughputQps * batch,
    splitMs: {
      pre: perf.h2d?.mean ?? 0,
      infer: perf.gpuCompute?.mean ?? perf.latency.mean,
      post: perf.d2h?.mean ?? 0,
    },
    rssMb: options.rssMb,
    cpuLoadPct: options.cpuLoadPct,
    wallMs: (perf.totalHostWalltimeS ?? 0) * 1000,
  };
  if (options.tegrastats !== undefined) result.tegrastats = options.tegrastats;
  return result;
}
