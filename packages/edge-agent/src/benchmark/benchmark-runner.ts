import { availableParallelism } from 'node:os';
import { latencyStats, type BenchLatency } from '@kd-edge/core';
import { BenchError } from './bench-error.js';
import { TegrastatsMonitor } from './tegrastats-monitor.js';
import type { TegrastatsMonitorOptions, TegrastatsSummary } from './tegrastats-monitor.js';

/** The three phases of one inference. */
export type BenchPhase = 'pre' | 'infer' | 'post';

/** Time spent in each phase of one iteration (ms). */
export interface PhaseTimings {
  pre: number;
  infer: number;
  post: number;
}

/** Handed to each step: times a phase, so the split is measured without the caller reading clocks. */
export interface BenchStepContext {
  /** 0-based run index, warm-up runs first. */
  iteration: number;
  warmup: boolean;
  /** Runs `fn` and adds its duration to `phase`. */
  time<T>(phase: BenchPhase, fn: () => T | Promise<T>): Promise<T>;
}

/**
 * One inference. Either time its phases with `ctx.time`, or return the timings yourself (they replace what
 * `ctx.time` measured); time not attributed to a phase counts as `infer`.
 */
export type BenchStep = (ctx: BenchStepContext) => void | PhaseTimings | Promise<void | PhaseTimings>;

/** Options of {@link runBenchmark}. */
export interface BenchmarkOptions {
  /** Untimed runs first (default 10). */
  warmup?: number;
  /** Measured runs (default 100). */
  iterations?: number;
  /** Images per run, for the throughput (default 1). */
  batch?: number;
  /** Sample tegrastats during the measured runs (default off; no tegrastats → no figures, no error). */
  tegrastats?: boolean | TegrastatsMonitorOptions;
  signal?: AbortSignal;
}

/** What a benchmark measured; the runtime-independent part of the bench message. */
export interface BenchmarkResult {
  warmup: number;
  iterations: number;
  batch: number;
  /** Wall time of each whole step (pre + infer + post). */
  latencyMs: BenchLatency;
  /** Images per second over the measured runs. */
  throughputFps: number;
  /** Mean time per phase. */
  splitMs: PhaseTimings;
  /** Peak resident set size of this process during the measured runs (MiB). */
  rssMb: number;
  /** This process's CPU time over the measured wall time, as a share of all cores (0..100). */
  cpuLoadPct: number;
  /** Wall time of the measured runs (ms). */
  wallMs: number;
  tegrastats?: TegrastatsSummary;
}

function checkCount(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000;

/**
 * Runs `step` for warm-up plus measured iterations and reports latency percentiles (core's nearest-rank
 * `percentile`), throughput, the mean pre/infer/post split, peak RSS and CPU load, and tegrastats means when asked.
 * @example
 * const r = await runBenchmark(async (ctx) => {
 *   const x = await ctx.time('pre', () => preprocess(frame));
 *   const y = await ctx.time('infer', () => runtime.run(x, dims));
 *   await ctx.time('post', () => decode(y));
 * }, { warmup: 10, iterations: 100 });
 */
export async function runBenchmark(step: BenchStep, options: BenchmarkOptions = {}): Promise<BenchmarkResult> {
  if (typeof step !== 'function') throw new TypeError('step must be a function');
  const warmup = checkCount('warmup', options.warmup ?? 10, 0);
  const iterations = checkCount('iterations', options.iterations ?? 100, 1);
  const batch = checkCount('batch', options.batch ?? 1, 1);

  const latencies: number[] = [];
  const sums: PhaseTimings = { pre: 0, infer: 0, post: 0 };
  let monitor: TegrastatsMonitor | undefined;
  let tegrastats: TegrastatsSummary | undefined;
  let peakRss = 0;
  let cpuStart: NodeJS.CpuUsage | undefined;
  let wallStart = 0;
  let wallMs = 0;
  let cpuUsage: NodeJS.CpuUsage = { user: 0, system: 0 };

  try {
    for (let i = 0; i < warmup + iterations; i++) {
      if (options.signal?.aborted) throw new BenchError('BENCH_ABORTED', i, `benchmark aborted at run ${i}`);
      const measured = i >= warmup;
      if (i === warmup) {
        if (options.tegrastats) {
          monitor = await TegrastatsMonitor.start(options.tegrastats === true ? {} : options.tegrastats);
        }
        cpuStart = process.cpuUsage();
        wallStart = performance.now();
      }
      const phases: PhaseTimings = { pre: 0, infer: 0, post: 0 };
      const ctx: BenchStepContext = {
        iteration: i,
        warmup: !measured,
        async time(phase, fn) {
          const t0 = performance.now();
          try {
            return await fn();
          } finally {
            phases[phase] += performance.now() - t0;
          }
        },
      };
      const t0 = performance.now();
      let returned: void | PhaseTimings;
      try {
        returned = await step(ctx);
      } catch (e) {
        throw new BenchError('BENCH_STEP_FAILED', i, `benchmark step ${i} failed: ${(e as Error)?.message ?? e}`, { cause: e });
      }
      const dt = performance.now() - t0;
      if (!measured) continue;
      const split = returned ?? phases;
      if (returned === undefined) {
        // Whatever the step did outside ctx.time (feeding tensors, awaiting) belongs to inference.
        split.infer += Math.max(0, dt - (phases.pre + phases.infer + phases.post));
      }
      sums.pre += split.pre;
      sums.infer += split.infer;
      sums.post += split.post;
      latencies.push(dt);
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
    }
    wallMs = performance.now() - wallStart;
    cpuUsage = process.cpuUsage(cpuStart);
  } finally {
    if (monitor !== undefined) tegrastats = await monitor.stop();
  }

  const stats = latencyStats(latencies, warmup);
  const cpuMs = (cpuUsage.user + cpuUsage.system) / 1000;
  const result: BenchmarkResult = {
    warmup,
    iterations: latencies.length,
    batch,
    latencyMs: {
      min: round3(stats.min),
      mean: round3(stats.mean),
      p50: round3(stats.p50),
      p90: round3(stats.p90),
      p95: round3(stats.p95),
      p99: round3(stats.p99),
      max: round3(stats.max),
    },
    throughputFps: round3(wallMs > 0 ? (latencies.length * batch * 1000) / wallMs : 0),
    splitMs: {
      pre: round3(sums.pre / latencies.length),
      infer: round3(sums.infer / latencies.length),
      post: round3(sums.post / latencies.length),
    },
    rssMb: round3(peakRss / (1024 * 1024)),
    cpuLoadPct: round3(wallMs > 0 ? Math.min(100, (100 * cpuMs) / wallMs / availableParallelism()) : 0),
    wallMs: round3(wallMs),
  };
  if (tegrastats !== undefined) result.tegrastats = tegrastats;
  return result;
}
