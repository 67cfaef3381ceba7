import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import type { TegrastatsSummary } from '@kd-edge/core';
import { silentLogger, type Logger } from '@kd-edge/core';
import { findOnPath, isExecutableFile } from '../runtime/trtexec-locate.js';
import { parseTegrastatsLine } from './tegrastats-parser.js';
import type { TegrastatsSample } from './tegrastats-parser.js';

// The bench message's `tegrastats` (core's protocol type): mean power per rail (mW), temperature per zone (°C).
export type { TegrastatsSummary };

/** Where L4T installs tegrastats. */
export const DEFAULT_TEGRASTATS_PATHS: readonly string[] = ['/usr/bin/tegrastats'];

/** Options of {@link TegrastatsMonitor.start}. */
export interface TegrastatsMonitorOptions {
  /** An explicit tegrastats path; when it is not executable there is no monitor (and a warning). */
  path?: string;
  /** PATH to search (default `process.env.PATH`). */
  envPath?: string;
  /** Sampling interval in ms (tegrastats `--interval`, default 500). */
  intervalMs?: number;
  /** Extra arguments (tests use this to point a stand-in at its sample lines). */
  extraArgs?: readonly string[];
  logger?: Logger;
}


/** Events of {@link TegrastatsMonitor}. */
export interface TegrastatsMonitorEvents {
  sample: [TegrastatsSample];
  /** tegrastats ended before {@link TegrastatsMonitor.stop} (e.g. it needs root); samples so far are kept. */
  exit: [code: number | null, signal: NodeJS.Signals | null];
}

function mean(values: number[]): number | undefined {
  return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0) / values.length;
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function meanBy(samples: readonly TegrastatsSample[], pick: (s: TegrastatsSample) => Record<string, number>): Record<string, number> {
  const sums = new Map<string, number[]>();
  for (const s of samples) {
    for (const [k, v] of Object.entries(pick(s))) {
      let list = sums.get(k);
      if (list === undefined) sums.set(k, (list = []));
      list.push(v);
    }
  }
  const out: Record<string, number> = {};
  for (const [k, list] of sums) out[k] = round(mean(list)!);
  return out;
}

/** Means per rail and zone, mean GPU load, RAM and total power over tegrastats samples. */
export function summarizeTegrastats(samples: readonly TegrastatsSample[]): TegrastatsSummary {
  const summary: TegrastatsSummary = {
    samples: samples.length,
    powerMw: meanBy(samples, (s) => Object.fromEntries(Object.entries(s.powerMw).map(([k, r]) => [k, r.currentMw]))),
    tempC: meanBy(samples, (s) => s.tempC),
  };
  const total = mean(samples.flatMap((s) => (s.totalPowerMw === undefined ? [] : [s.totalPowerMw])));
  if (total !== undefined) summary.totalPowerMw = round(total);
  const gpu = mean(samples.flatMap((s) => (s.gpu === undefined ? [] : [s.gpu.loadPct])));
  if (gpu !== undefined) summary.gpuLoadPct = round(gpu);
  const ram = mean(samples.flatMap((s) => (s.ram === undefined ? [] : [s.ram.usedMb])));
  if (ram !== undefined) summary.ramUsedMb = round(ram);
  return summary;
}

/** Finds tegrastats: an explicit path, PATH, then /usr/bin/tegrastats; undefined when absent (not a Jetson). */
export async function locateTegrastats(options: Pick<TegrastatsMonitorOptions, 'path' | 'envPath'> = {}): Promise<string | undefined> {
  if (options.path !== undefined) return (await isExecutableFile(options.path)) ? options.path : undefined;
  const found = await findOnPath('tegrastats', 'envPath' in options ? options.envPath : process.env.PATH);
  if (found !== undefined) return found;
  for (const p of DEFAULT_TEGRASTATS_PATHS) if (await isExecutableFile(p)) return p;
  return undefined;
}

const STOP_GRACE_MS = 2000;

/**
 * Runs `tegrastats --interval <ms>` during a benchmark and collects its samples. {@link start} resolves undefined
 * where there is no tegrastats (any non-Jetson machine): a missing monitor is never an error.
 * @example
 * const mon = await TegrastatsMonitor.start({ intervalMs: 250 });
 * await runBenchmark(...);
 * const tegrastats = await mon?.stop();
 */
export class TegrastatsMonitor extends EventEmitter<TegrastatsMonitorEvents> {
  readonly samples: TegrastatsSample[] = [];
  readonly #child: ChildProcess;
  readonly #closed: Promise<void>;
  #stopping = false;

  private constructor(child: ChildProcess, log: Logger) {
    super();
    this.#child = child;
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const s = parseTegrastatsLine(line);
      if (s === undefined) return;
      this.samples.push(s);
      this.emit('sample', s);
    });
    child.stderr!.resume();
    this.#closed = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        if (!this.#stopping) {
          log.warn(`tegrastats ended early (code ${code}, signal ${signal}); ${this.samples.length} samples kept`);
          this.emit('exit', code, signal);
        }
        resolve();
      });
    });
  }

  /** Starts tegrastats, or resolves undefined when it is absent or cannot start. */
  static async start(options: TegrastatsMonitorOptions = {}): Promise<TegrastatsMonitor | undefined> {
    const log = options.logger ?? silentLogger;
    const intervalMs = options.intervalMs ?? 500;
    if (!Number.isInteger(intervalMs) || intervalMs < 10) throw new RangeError(`intervalMs must be an integer >= 10, got ${intervalMs}`);
    const exe = await locateTegrastats(options);
    if (exe === undefined) {
      if (options.path !== undefined) log.warn(`tegrastats ${options.path} is not executable; no power/thermal figures`);
      return undefined;
    }
    const child = spawn(exe, ['--interval', String(intervalMs), ...(options.extraArgs ?? [])], {
      shell: false,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const started = await new Promise<boolean>((resolve) => {
      child.once('spawn', () => resolve(true));
      child.once('error', (e) => {
        log.warn(`tegrastats could not start: ${e.message}`);
        resolve(false);
      });
    });
    return started ? new TegrastatsMonitor(child, log) : undefined;
  }

  /** Stops tegrastats (SIGTERM, then SIGKILL after 2 s) and returns the summary of the samples collected. */
  async stop(): Promise<TegrastatsSummary> {
    if (!this.#stopping) {
      this.#stopping = true;
      if (this.#child.exitCode === null && this.#child.signalCode === null) {
        this.#child.kill('SIGTERM');
        const timer = setTimeout(() => this.#child.kill('SIGKILL'), STOP_GRACE_MS);
        await this.#closed;
        clearTimeout(timer);
      }
    }
    await this.#closed;
    return summarizeTegrastats(this.samples);
  }
}
