import * as ort from 'onnxruntime-node';
import type { BenchLatency } from '../protocol/bench.js';

/** Latency figures in milliseconds over the measured runs: a bench report's figures, and how many runs made them. */
export interface LatencyStats extends BenchLatency {
  runs: number;
  warmup: number;
}

/** Options of {@link measureOrtLatency}. */
export interface OrtLatencyOptions {
  /** Untimed runs first (default 5). */
  warmup?: number;
  /** Timed runs (default 50). */
  runs?: number;
  /** Dims of every input whose shape is not fully static (default: symbolic dims → 1). */
  inputDims?: Record<string, number[]>;
  /** ONNX Runtime session options (threads, execution providers). */
  sessionOptions?: ort.InferenceSession.SessionOptions;
}

/** Percentile by nearest rank on sorted values (what trtexec and most benchmark tools report). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Summarises timings (ms) into {@link LatencyStats}. */
export function latencyStats(times: readonly number[], warmup: number): LatencyStats {
  const s = [...times].sort((a, b) => a - b);
  return {
    runs: s.length,
    warmup,
    min: s[0] ?? Number.NaN,
    mean: s.reduce((a, b) => a + b, 0) / (s.length || 1),
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? Number.NaN,
  };
}

function elemCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/**
 * Runs an ONNX model in onnxruntime-node on seeded random float inputs and measures the latency of
 * `session.run` (median of many runs after warm-up). Inputs must be float32 (images).
 * @example const { p50 } = await measureOrtLatency('model.onnx', { runs: 100 });
 */
export async function measureOrtLatency(model: string | Uint8Array, opts: OrtLatencyOptions = {}): Promise<LatencyStats> {
  const warmup = opts.warmup ?? 5;
  const runs = opts.runs ?? 50;
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`runs: expected an integer >= 1, got ${String(opts.runs)}`);
  const session = typeof model === 'string'
    ? await ort.InferenceSession.create(model, opts.sessionOptions ?? {})
    : await ort.InferenceSession.create(model, opts.sessionOptions ?? {});
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) {
      const meta = session.inputMetadata.find((m) => m.name === name);
      let dims = opts.inputDims?.[name];
      if (dims === undefined) {
        const shape = meta !== undefined && meta.isTensor ? meta.shape : [];
        dims = shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
      }
      const data = new Float32Array(elemCount(dims));
      let s = 12345;
      for (let i = 0; i < data.length; i++) {
        s = (s * 1103515245 + 12345) >>> 0;
        data[i] = (s >>> 8) / 16777216;
      }
      feeds[name] = new ort.Tensor('float32', data, dims);
    }
    const times: number[] = [];
    for (let i = 0; i < warmup + runs; i++) {
      const t0 = performance.now();
      const out = await session.run(feeds);
      const dt = performance.now() - t0;
      for (const t of Object.values(out)) t.dispose();
      if (i >= warmup) times.push(dt);
    }
    return latencyStats(times, warmup);
  } finally {
    await session.release();
  }
}
