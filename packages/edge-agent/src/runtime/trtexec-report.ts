import type { BenchLatency } from '@kd-edge/core';
import { RuntimeError } from './runtime-error.js';

/** One timing line of trtexec's summary, in milliseconds. `percentiles` is keyed by the percent as printed (`'99'`). */
export interface TrtexecTiming {
  min: number;
  max: number;
  mean: number;
  median: number;
  percentiles: Record<string, number>;
}

/** trtexec's performance summary. `latency` is the host latency (H2D + GPU compute + D2H) of one inference. */
export interface TrtexecPerformance {
  /** `summary` (TensorRT 7.2 and later) or `legacy` (the `Host Latency` blocks of TensorRT 7.0/7.1). */
  format: 'summary' | 'legacy';
  throughputQps: number;
  latency: TrtexecTiming;
  endToEnd?: TrtexecTiming;
  enqueue?: TrtexecTiming;
  h2d?: TrtexecTiming;
  gpuCompute?: TrtexecTiming;
  d2h?: TrtexecTiming;
  totalHostWalltimeS?: number;
  totalGpuComputeS?: number;
}

/** Latency figures of a bench report (ms); `estimated` names percentiles trtexec did not print (see {@link trtexecLatencyMs}). */
export interface TrtexecLatencyMs extends BenchLatency {
  estimated: string[];
}

// Each log line starts with `[MM/DD/YYYY-HH:MM:SS] [I] ` (SPECS 4); tolerate lines with only the level, or neither.
const PREFIX = /^(?:\[\d[^\]]*\] )?(?:\[[A-Z]+\] )?/;
const NUM = '([-+]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][-+]?\\d+)?)';
const TIMING_LINE = /^(Latency|End-to-End Host Latency|Enqueue Time|H2D Latency|GPU Compute Time|D2H Latency): (.*)$/;
const TIMING_ITEM = new RegExp(`(min|max|mean|median|percentile\\((\\d+(?:\\.\\d+)?)%\\)) = ${NUM} ms`, 'g');
const THROUGHPUT = new RegExp(`^Throughput: ${NUM} qps`);

const KEYS: Record<string, keyof TrtexecPerformance> = {
  Latency: 'latency',
  'End-to-End Host Latency': 'endToEnd',
  'Enqueue Time': 'enqueue',
  'H2D Latency': 'h2d',
  'GPU Compute Time': 'gpuCompute',
  'D2H Latency': 'd2h',
};

function stripPrefix(line: string): string {
  return line.replace(/\r$/, '').replace(PREFIX, '').trim();
}

function parseTimingItems(text: string): TrtexecTiming | undefined {
  const t: Partial<TrtexecTiming> = { percentiles: {} };
  for (const m of text.matchAll(TIMING_ITEM)) {
    const value = Number(m[3]);
    if (m[2] !== undefined) t.percentiles![String(Number(m[2]))] = value;
    else t[m[1] as 'min' | 'max' | 'mean' | 'median'] = value;
  }
  if (t.min === undefined || t.max === undefined || t.mean === undefined || t.median === undefined) return undefined;
  return t as TrtexecTiming;
}

function parseSummary(lines: string[]): TrtexecPerformance | undefined {
  const perf: Partial<TrtexecPerformance> = { format: 'summary' };
  for (const line of lines) {
    const tp = THROUGHPUT.exec(line);
    if (tp) {
      perf.throughputQps = Number(tp[1]);
      continue;
    }
    const tl = TIMING_LINE.exec(line);
    if (tl) {
      const timing = parseTimingItems(tl[2]!);
      if (timing) (perf as Record<string, unknown>)[KEYS[tl[1]!]!] = timing;
      continue;
    }
    const wall = new RegExp(`^Total Host Walltime: ${NUM} s`).exec(line);
    if (wall) perf.totalHostWalltimeS = Number(wall[1]);
    const gpu = new RegExp(`^Total GPU Compute Time: ${NUM} s`).exec(line);
    if (gpu) perf.totalGpuComputeS = Number(gpu[1]);
  }
  if (perf.latency === undefined || perf.throughputQps === undefined) return undefined;
  return perf as TrtexecPerformance;
}

// TensorRT 7.0/7.1: `Host Latency` then `min: X ms (end to end Y ms)` … `percentile: X ms at 99% (end to end Y ms at 99%)`.
function parseLegacy(lines: string[]): TrtexecPerformance | undefined {
  const start = lines.lastIndexOf('Host Latency');
  if (start < 0) return undefined;
  const host: Partial<TrtexecTiming> = { percentiles: {} };
  const e2e: Partial<TrtexecTiming> = { percentiles: {} };
  let throughput: number | undefined;
  let walltime: number | undefined;
  for (const line of lines.slice(start + 1)) {
    const stat = new RegExp(`^(min|max|mean|median): ${NUM} ms(?: \\(end to end ${NUM} ms\\))?`).exec(line);
    if (stat) {
      host[stat[1] as 'min'] = Number(stat[2]);
      if (stat[3] !== undefined) e2e[stat[1] as 'min'] = Number(stat[3]);
      continue;
    }
    const pct = new RegExp(`^percentile: ${NUM} ms at (\\d+(?:\\.\\d+)?)%(?: \\(end to end ${NUM} ms at [\\d.]+%\\))?`).exec(line);
    if (pct) {
      host.percentiles![String(Number(pct[2]))] = Number(pct[1]);
      if (pct[3] !== undefined) e2e.percentiles![String(Number(pct[2]))] = Number(pct[3]);
      continue;
    }
    const tp = new RegExp(`^throughput: ${NUM} qps`).exec(line);
    if (tp) throughput = Number(tp[1]);
    const wall = new RegExp(`^walltime: ${NUM} s`).exec(line);
    if (wall) walltime = Number(wall[1]);
    // The next block (Enqueue Time, GPU Compute) repeats the same line shapes.
    if (line === 'Enqueue Time' || line === 'GPU Compute') break;
  }
  const complete = (t: Partial<TrtexecTiming>): t is TrtexecTiming =>
    t.min !== undefined && t.max !== undefined && t.mean !== undefined && t.median !== undefined;
  if (!complete(host) || throughput === undefined) return undefined;
  const perf: TrtexecPerformance = { format: 'legacy', throughputQps: throughput, latency: host };
  if (complete(e2e)) perf.endToEnd = e2e;
  if (walltime !== undefined) perf.totalHostWalltimeS = walltime;
  return perf;
}

/**
 * Parses the last `=== Performance summary ===` of trtexec's output (and the `Host Latency` blocks of TensorRT
 * 7.0/7.1). Throws a {@link RuntimeError} `RUNTIME_TRTEXEC_OUTPUT` with the output's tail when there is none.
 * @example parseTrtexecPerformance(run.output).latency.percentiles['99']
 */
export function parseTrtexecPerformance(output: string): TrtexecPerformance {
  if (typeof output !== 'string') throw new TypeError('output must be a string');
  const lines = output.split('\n').map(stripPrefix);
  const at = lines.lastIndexOf('=== Performance summary ===');
  const perf = at >= 0 ? parseSummary(lines.slice(at + 1)) : parseLegacy(lines);
  if (perf === undefined) {
    const tail = lines.filter((l) => l !== '').slice(-30).join('\n');
    throw new RuntimeError(
      'RUNTIME_TRTEXEC_OUTPUT',
      at >= 0 ? 'trtexec performance summary lacks Throughput or Latency' : 'no performance summary in trtexec output',
      { outputTail: tail },
    );
  }
  return perf;
}

/**
 * The host latency of a trtexec summary in a bench report's shape. Percentiles trtexec did not print (before 8.4
 * it prints only the 99th) are filled with the next higher percentile it did print, or the max: an upper bound,
 * so latency gates stay on the safe side; their names are listed in `estimated`.
 */
export function trtexecLatencyMs(perf: TrtexecPerformance): TrtexecLatencyMs {
  const t = perf.latency;
  const printed = Object.entries(t.percentiles)
    .map(([p, v]) => [Number(p), v] as const)
    .sort((a, b) => a[0] - b[0]);
  const estimated: string[] = [];
  const pick = (p: number): number => {
    const exact = printed.find(([q]) => q === p);
    if (exact) return exact[1];
    estimated.push(`p${p}`);
    return printed.find(([q]) => q > p)?.[1] ?? t.max;
  };
  return { min: t.min, mean: t.mean, p50: t.median, p90: pick(90), p95: pick(95), p99: pick(99), max: t.max, estimated };
}
