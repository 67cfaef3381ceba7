import { parseTrtVersion, type Logger } from '@kd-edge/core';
import { runTrtexec } from './trtexec-process.js';
import { parseTrtexecPerformance } from './trtexec-report.js';
import type { TrtexecPerformance } from './trtexec-report.js';

/** Options of {@link benchmarkEngine}. */
export interface TrtexecBenchOptions {
  trtexec: string;
  enginePath: string;
  /** TensorRT version of `trtexec`: selects the `--percentile` spelling. */
  trtVersion: string;
  /** Warm-up time in ms (trtexec `--warmUp`, default 200). */
  warmUpMs?: number;
  /** Minimum measured iterations (default 100). */
  iterations?: number;
  /** Minimum measured seconds (default 0: stop after `iterations`). */
  durationS?: number;
  /** Input shape for engines with a dynamic profile (`--shapes=name:dims`). */
  shapes?: { name: string; dims: readonly number[] };
  /** DLA core the engine was built for. */
  dlaCore?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
  logger?: Logger;
}

/** A trtexec benchmark: the parsed summary and the arguments that produced it. */
export interface TrtexecBenchResult extends TrtexecPerformance {
  args: string[];
  trtVersion: string;
}

function checkInt(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** trtexec arguments of a benchmark of a built engine (argv array). */
export function trtexecBenchArgs(options: Omit<TrtexecBenchOptions, 'trtexec' | 'timeoutMs' | 'signal' | 'logger'>): string[] {
  if (typeof options.enginePath !== 'string' || options.enginePath === '' || options.enginePath.startsWith('-')) {
    throw new RangeError(`enginePath must be a path not starting with '-', got ${JSON.stringify(options.enginePath)}`);
  }
  const v = parseTrtVersion(options.trtVersion);
  const args = [
    `--loadEngine=${options.enginePath}`,
    `--warmUp=${checkInt('warmUpMs', options.warmUpMs ?? 200, 0)}`,
    `--iterations=${checkInt('iterations', options.iterations ?? 100, 1)}`,
    `--duration=${checkInt('durationS', options.durationS ?? 0, 0)}`,
    // A list of percentiles is accepted from TensorRT 8.4; before, one value (default 99).
    v.major > 8 || (v.major === 8 && v.minor >= 4) ? '--percentile=90,95,99' : '--percentile=99',
  ];
  if (options.shapes !== undefined) {
    const { name, dims } = options.shapes;
    if (!/^(?!-)[^\s=,:'"\\\x00-\x1f\x7f]+$/.test(name)) throw new RangeError(`shapes.name ${JSON.stringify(name)} is not a safe tensor name`);
    dims.forEach((d, i) => checkInt(`shapes.dims[${i}]`, d, 1));
    args.push(`--shapes=${name}:${dims.join('x')}`);
  }
  if (options.dlaCore !== undefined) args.push(`--useDLACore=${checkInt('dlaCore', options.dlaCore, 0)}`);
  return args;
}

/**
 * Benchmarks a TensorRT engine with trtexec and parses its performance summary. Throws `RUNTIME_TRTEXEC_FAILED`
 * (or `_TIMEOUT`, `_OUTPUT`) with the tail of trtexec's output.
 * @example const r = await benchmarkEngine({ trtexec, enginePath, trtVersion: '8.6.2', iterations: 200 });
 */
export async function benchmarkEngine(options: TrtexecBenchOptions): Promise<TrtexecBenchResult> {
  const args = trtexecBenchArgs(options);
  const run = await runTrtexec(options.trtexec, args, {
    timeoutMs: options.timeoutMs ?? 10 * 60_000,
    signal: options.signal,
    logger: options.logger,
    what: 'engine benchmark',
  });
  return { ...parseTrtexecPerformance(run.output), args, trtVersion: options.trtVersion };
}
