import { parseTrtVersion } from '@kd-edge/core';
import type { RunTrtexecOptions } from './trtexec-process.js';
import { runTrtexec } from './trtexec-process.js';
import { RuntimeError } from './runtime-error.js';

/**
 * The version string of TensorRT's version integer: major·1000 + minor·100 + patch before 10 (8201 → `8.2.1`),
 * major·10000 + minor·100 + patch from 10 on (100300 → `10.3.0`), as core's `trtVersionNumber` writes them.
 */
export function trtVersionFromNumber(n: number): string {
  if (!Number.isInteger(n) || n < 1000) throw new RangeError(`TensorRT version number must be an integer >= 1000, got ${n}`);
  const [major, rest] = n >= 100000 ? [Math.floor(n / 10000), n % 10000] : [Math.floor(n / 1000), n % 1000];
  return `${major}.${Math.floor(rest / 100)}.${rest % 100}`;
}

/**
 * The TensorRT version in trtexec output: the banner `&&&& RUNNING TensorRT.trtexec [TensorRT v8201]`, else a
 * `TensorRT version: 8.2.1` log line; undefined when neither is there.
 */
export function parseTrtexecVersion(output: string): string | undefined {
  const banner = /&&&& \w+ TensorRT\.trtexec(?: \[TensorRT v(\d+)\])?/.exec(output);
  if (banner?.[1] !== undefined) return trtVersionFromNumber(Number(banner[1]));
  const line = /TensorRT version: (\d+\.\d+\.\d+)/.exec(output);
  if (line) {
    parseTrtVersion(line[1]!);
    return line[1];
  }
  return undefined;
}

/**
 * Asks trtexec for its TensorRT version (it prints the banner before its help). Throws `RUNTIME_TRTEXEC_VERSION`
 * when the output has no version.
 */
export async function detectTrtexecVersion(executable: string, options: RunTrtexecOptions = {}): Promise<string> {
  const run = await runTrtexec(executable, ['--help'], {
    timeoutMs: 60_000,
    what: 'trtexec --help',
    ...options,
    // Some builds exit non-zero after printing help; the banner is what matters.
    allowFailure: true,
  });
  const version = parseTrtexecVersion(run.output);
  if (version === undefined) {
    throw new RuntimeError('RUNTIME_TRTEXEC_VERSION', `no TensorRT version in the output of ${executable} --help`, {
      outputTail: run.tail,
    });
  }
  return version;
}
