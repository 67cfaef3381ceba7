import type { TensorRange } from '../quant/calibrate/types.js';
import { CalibCacheError } from './errors.js';
import { trtVersionNumber } from './trt-version.js';

export { trtVersionNumber } from './trt-version.js';

/** Calibrator names TensorRT writes into cache headers. */
export const TRT_CALIBRATION_ALGORITHMS = [
  'EntropyCalibration2',
  'EntropyCalibration',
  'MinMaxCalibration',
  'LegacyCalibration',
] as const;

/** A TensorRT INT8 calibrator algorithm name. */
export type TrtCalibrationAlgorithm = (typeof TRT_CALIBRATION_ALGORITHMS)[number];

/** Options of {@link writeCalibCache}. */
export interface CalibCacheOptions {
  /** TensorRT version the engine will be built with, e.g. `8.6.1`; TensorRT rejects headers of other versions. */
  trtVersion: string;
  /** Calibrator named in the header (default `EntropyCalibration2`, as TAO and ORT examples write). */
  algorithm?: TrtCalibrationAlgorithm;
}

/** A parsed calibration cache. */
export interface ParsedCalibCache {
  /** The header's version integer, e.g. 8601. */
  version: number;
  algorithm: string;
  /** float32 scale (amax / 127) per tensor, in file order. */
  scales: Map<string, number>;
}

const scratch = new DataView(new ArrayBuffer(4));

/**
 * Hex of the float32 scale amax / 127 as TensorRT caches store it: the IEEE-754 bits as one number, most significant
 * digit first, lower case, no zero padding (amax 1 → `3c010204`, amax 127 → `3f800000`).
 */
export function calibScaleHex(amax: number): string {
  if (!(Number.isFinite(amax) && amax >= 0)) throw new RangeError(`amax must be a finite number >= 0, got ${amax}`);
  scratch.setFloat32(0, amax / 127);
  return scratch.getUint32(0).toString(16);
}

/** The dynamic range TensorRT (and ORT's `ReadDynamicRange`) derives from a cached scale: float32(scale · 127). */
export function amaxFromCalibScale(scale: number): number {
  return Math.fround(scale * 127);
}

function checkName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) {
    throw new RangeError(`tensor names must be non-empty strings, got ${JSON.stringify(name)}`);
  }
  // ORT's TensorRT EP splits each line at the first ':' (and readers split lines at newlines): such names would
  // come back truncated, so they are refused rather than written.
  if (/[:\r\n]/.test(name)) {
    throw new RangeError(`tensor name ${JSON.stringify(name)} contains ':' or a line break, which cache readers split on`);
  }
}

/**
 * Writes a TensorRT INT8 calibration cache: header `TRT-<version>-<algorithm>`, then `name: hex` per tensor in map
 * order, hex being {@link calibScaleHex} of amax = max(|min|, |max|) (or the number given). Feed it to
 * `trtexec --calib=` or ORT's TensorRT EP (`trt_int8_use_native_calibration_table`).
 * @example writeCalibCache(new Map([['images', { min: 0, max: 1 }]]), { trtVersion: '8.6.1' })
 * // 'TRT-8601-EntropyCalibration2\nimages: 3c010204\n'
 */
export function writeCalibCache(
  ranges: ReadonlyMap<string, TensorRange> | ReadonlyMap<string, number>,
  options: CalibCacheOptions,
): string {
  return `${calibCacheHeader(options)}\n${calibCacheBody(ranges)}`;
}

/**
 * One calibration cache per TensorRT version, from one body: every cache holds the same `name: hex` lines and
 * differs only in its header line (`TRT-8201-EntropyCalibration2`, `TRT-100300-EntropyCalibration2`, …), since
 * TensorRT skips a cache whose header is not its own. Keys are the versions as given; repeats are refused.
 * @example writeCalibCaches(ranges, ['8.2.1', '10.3.0']).get('8.2.1') // 'TRT-8201-EntropyCalibration2\n…'
 */
export function writeCalibCaches(
  ranges: ReadonlyMap<string, TensorRange> | ReadonlyMap<string, number>,
  trtVersions: readonly string[],
  options: Omit<CalibCacheOptions, 'trtVersion'> = {},
): Map<string, string> {
  if (!Array.isArray(trtVersions) || trtVersions.length === 0) throw new RangeError('trtVersions must list at least one TensorRT version');
  const headers = trtVersions.map((v) => calibCacheHeader({ ...options, trtVersion: v }));
  const numbers = trtVersions.map((v) => trtVersionNumber(v));
  const repeat = numbers.findIndex((n, i) => numbers.indexOf(n) !== i);
  if (repeat >= 0) throw new RangeError(`trtVersions names TensorRT ${trtVersions[repeat]} twice`);
  const body = calibCacheBody(ranges);
  return new Map(trtVersions.map((v, i) => [v, `${headers[i]}\n${body}`]));
}

/** The header line `TRT-<version number>-<algorithm>` of a calibration cache. */
export function calibCacheHeader(options: CalibCacheOptions): string {
  const algorithm = options.algorithm ?? 'EntropyCalibration2';
  if (!TRT_CALIBRATION_ALGORITHMS.includes(algorithm)) {
    throw new RangeError(
      `algorithm must be one of ${TRT_CALIBRATION_ALGORITHMS.join(', ')}, got ${JSON.stringify(algorithm)}`,
    );
  }
  return `TRT-${trtVersionNumber(options.trtVersion)}-${algorithm}`;
}

function calibCacheBody(ranges: ReadonlyMap<string, TensorRange> | ReadonlyMap<string, number>): string {
  const lines: string[] = [];
  for (const [name, range] of ranges) {
    checkName(name);
    let amax: number;
    if (typeof range === 'number') {
      amax = range;
    } else {
      if (!Number.isFinite(range?.min) || !Number.isFinite(range?.max)) {
        throw new RangeError(`range of tensor ${JSON.stringify(name)} must have finite min and max`);
      }
      amax = Math.max(Math.abs(range.min), Math.abs(range.max));
    }
    if (!(Number.isFinite(amax) && amax >= 0)) {
      throw new RangeError(`amax of tensor ${JSON.stringify(name)} must be a finite number >= 0, got ${amax}`);
    }
    lines.push(`${name}: ${calibScaleHex(amax)}\n`);
  }
  return lines.join('');
}

/**
 * Parses a TensorRT INT8 calibration cache. Like ORT's `ReadDynamicRange` it needs `TRT-` on the first line and
 * reads each entry's hex as the float32 bits of the scale, a repeated name keeping its last value. Unlike ORT, which
 * cuts at the first ':', the name is everything before the last ':' so TensorRT-written names such as `input:0` survive.
 * @example parseCalibCache('TRT-8601-EntropyCalibration2\ndata: 3c008912\n').scales.get('data') // ≈ 0.0078452
 */
export function parseCalibCache(text: string): ParsedCalibCache {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  const header = /^TRT-(\d+)-([A-Za-z0-9_]+)$/.exec(lines[0].trim());
  if (!header) throw new CalibCacheError(1, `expected a header like TRT-8601-EntropyCalibration2, got ${JSON.stringify(lines[0])}`);
  const scales = new Map<string, number>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    const colon = line.lastIndexOf(':');
    if (colon <= 0) throw new CalibCacheError(i + 1, `expected "name: hex", got ${JSON.stringify(line)}`);
    const hex = line.slice(colon + 1).trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) {
      throw new CalibCacheError(i + 1, `expected up to 8 hex digits after the last ':', got ${JSON.stringify(hex)}`);
    }
    scratch.setUint32(0, parseInt(hex, 16));
    scales.set(line.slice(0, colon), scratch.getFloat32(0));
  }
  return { version: Number(header[1]), algorithm: header[2], scales };
}
