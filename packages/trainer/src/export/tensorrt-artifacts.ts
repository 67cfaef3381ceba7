import { join } from 'node:path';
import {
  buildTrtPlan, trtexecArgs, trtVersionNumber, writeCalibCaches, writeFileDurable, type ModelProto, type TensorRange, type TrtPrecision,
} from '@kd-edge/core';
import { ExportError } from '../errors.js';
import { ARTIFACT_FILES, trtVersionFiles } from './export-names.js';
import type { ExportConfig } from './export-schema.js';
import type { OnnxModelInfo } from './model-info.js';

function graphTensorNames(model: ModelProto): Set<string> {
  const g = model.graph!;
  const names = new Set<string>(g.input.map((i) => i.name));
  for (const n of g.node) for (const o of n.output) names.add(o);
  return names;
}

/** Splits `--trt-versions` (`8.2.1,8.5.2,10.3.0`), checking each version and refusing repeats. */
export function parseTrtVersions(text: string): string[] {
  const list = text.split(',').map((v) => v.trim()).filter(Boolean);
  const numbers: number[] = [];
  for (const v of list) {
    if (!/^\d+\.\d+\.\d+$/.test(v)) {
      throw new ExportError('EXPORT_TRT_VERSION', `--trt-versions: '${v}' is not a TensorRT version major.minor.patch, as devices report it (8.2.1, 10.3.0)`);
    }
    try {
      numbers.push(trtVersionNumber(v));
    } catch (e) {
      throw new ExportError('EXPORT_TRT_VERSION', `--trt-versions: ${(e as Error).message}`, { cause: e });
    }
    if (numbers.indexOf(numbers[numbers.length - 1]!) !== numbers.length - 1) throw new ExportError('EXPORT_TRT_VERSION', `--trt-versions: ${v} is listed twice`);
  }
  return list;
}

/** What {@link writeTensorrtArtifacts} wrote. */
export interface TensorrtArtifacts {
  files: string[];
  precision: TrtPrecision;
  /** trtexec command of the first version's plan. */
  trtexec: string[];
  /** Per TensorRT version: its plan and cache (with `--trt-versions`; one entry, the legacy names, without). */
  versions: { trtVersion: string; plan: string; calibCache?: string }[];
}

/**
 * Writes, for each TensorRT version, a calibration cache (TensorRT's text format, from the INT8 calibration ranges
 * of the float model, whose tensor names TensorRT's ONNX parser keeps; one body, a header per version) and a build
 * plan (how trtexec builds the engine of `model.onnx` on the device). With `--trt-versions` the files are named per
 * version (`calib.8.2.1.cache`, `trt-plan.8.2.1.json`); with `--trt-version` alone, `calib.cache` and `trt-plan.json`
 * as before. Returns the files, the versions and the trtexec arguments of the first plan.
 */
export async function writeTensorrtArtifacts(
  out: string,
  model: ModelProto,
  ranges: ReadonlyMap<string, TensorRange> | undefined,
  cfg: ExportConfig,
  inputShape: number[],
  info: OnnxModelInfo,
): Promise<TensorrtArtifacts> {
  const precision: TrtPrecision = cfg.trt_precision === 'auto' ? (ranges ? 'best' : 'fp16') : cfg.trt_precision;
  if (precision !== 'fp16' && ranges === undefined) {
    throw new ExportError('EXPORT_NEEDS_CALIBRATION', `--trt-precision ${precision} needs calibration ranges: give --calib-data`);
  }
  const perVersion = cfg.trt_versions.trim() !== '';
  const versions = perVersion ? parseTrtVersions(cfg.trt_versions) : [cfg.trt_version];
  const names = (v: string): { calibCache: string; trtPlan: string } =>
    perVersion ? trtVersionFiles(v) : { calibCache: ARTIFACT_FILES.calibCache, trtPlan: ARTIFACT_FILES.trtPlan };
  let caches: Map<string, string> | undefined;
  if (ranges !== undefined && precision !== 'fp16') {
    const known = graphTensorNames(model);
    const missing = [...ranges.keys()].filter((n) => !known.has(n));
    if (missing.length) throw new ExportError('EXPORT_TRT_TENSORS', `calibration ranges name tensors not in model.onnx: ${missing.slice(0, 5).join(', ')}`);
    caches = writeCalibCaches(ranges, versions);
  }
  const [b, , h, w] = inputShape as [number, number, number, number];
  const input = info.batch === undefined || info.imgsz === undefined
    ? { name: info.input.name, min: [1, 3, h, w], opt: [b, 3, h, w], max: [Math.max(b, 8), 3, h, w] }
    : { name: info.input.name, shape: [b, 3, h, w] };
  const files: string[] = [];
  const written: TensorrtArtifacts['versions'] = [];
  let trtexec: string[] | undefined;
  for (const trtVersion of versions) {
    const f = names(trtVersion);
    const cache = caches?.get(trtVersion);
    if (cache !== undefined) {
      await writeFileDurable(join(out, f.calibCache), cache);
      files.push(f.calibCache);
    }
    const plan = buildTrtPlan({
      trtVersion,
      precision,
      input,
      workspaceMiB: cfg.workspace,
      ...(cfg.dla_core >= 0 ? { dlaCore: cfg.dla_core, allowGpuFallback: cfg.gpu_fallback } : {}),
      onnxFile: ARTIFACT_FILES.onnx,
      ...(cache !== undefined ? { calibCacheFile: f.calibCache } : {}),
      engineFile: 'model.engine',
    });
    await writeFileDurable(join(out, f.trtPlan), `${JSON.stringify(plan, null, 2)}\n`);
    files.push(f.trtPlan);
    written.push({ trtVersion, plan: f.trtPlan, ...(cache !== undefined ? { calibCache: f.calibCache } : {}) });
    trtexec ??= ['trtexec', ...trtexecArgs(plan)];
  }
  return { files, precision, trtexec: trtexec!, versions: written };
}
