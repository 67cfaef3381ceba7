import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTrtPlan, trtexecArgs, writeCalibCache, type ModelProto, type TensorRange, type TrtPrecision } from '@kd-edge/core';
import { ExportError } from '../errors.js';
import { ARTIFACT_FILES } from './export-names.js';
import type { ExportConfig } from './export-schema.js';
import type { OnnxModelInfo } from './model-info.js';

function graphTensorNames(model: ModelProto): Set<string> {
  const g = model.graph!;
  const names = new Set<string>(g.input.map((i) => i.name));
  for (const n of g.node) for (const o of n.output) names.add(o);
  return names;
}

/**
 * Writes `calib.cache` (TensorRT's text format, from the INT8 calibration ranges of the float model,
 * whose tensor names TensorRT's ONNX parser keeps) and `trt-plan.json` (how trtexec builds the engine
 * of `model.onnx` on the device). Returns the files and the trtexec arguments the plan gives.
 */
export async function writeTensorrtArtifacts(
  out: string,
  model: ModelProto,
  ranges: ReadonlyMap<string, TensorRange> | undefined,
  cfg: ExportConfig,
  inputShape: number[],
  info: OnnxModelInfo,
): Promise<{ files: string[]; precision: TrtPrecision; trtexec: string[] }> {
  const precision: TrtPrecision = cfg.trt_precision === 'auto' ? (ranges ? 'best' : 'fp16') : cfg.trt_precision;
  if (precision !== 'fp16' && ranges === undefined) {
    throw new ExportError('EXPORT_NEEDS_CALIBRATION', `--trt-precision ${precision} needs calibration ranges: give --calib-data`);
  }
  const files: string[] = [];
  let calibCacheFile: string | undefined;
  if (ranges !== undefined && precision !== 'fp16') {
    const known = graphTensorNames(model);
    const missing = [...ranges.keys()].filter((n) => !known.has(n));
    if (missing.length) throw new ExportError('EXPORT_TRT_TENSORS', `calibration ranges name tensors not in model.onnx: ${missing.slice(0, 5).join(', ')}`);
    await writeFile(join(out, ARTIFACT_FILES.calibCache), writeCalibCache(ranges, { trtVersion: cfg.trt_version }));
    calibCacheFile = ARTIFACT_FILES.calibCache;
    files.push(calibCacheFile);
  }
  const [b, , h, w] = inputShape as [number, number, number, number];
  const input = info.batch === undefined || info.imgsz === undefined
    ? { name: info.input.name, min: [1, 3, h, w], opt: [b, 3, h, w], max: [Math.max(b, 8), 3, h, w] }
    : { name: info.input.name, shape: [b, 3, h, w] };
  const plan = buildTrtPlan({
    trtVersion: cfg.trt_version,
    precision,
    input,
    workspaceMiB: cfg.workspace,
    ...(cfg.dla_core >= 0 ? { dlaCore: cfg.dla_core, allowGpuFallback: cfg.gpu_fallback } : {}),
    onnxFile: ARTIFACT_FILES.onnx,
    ...(calibCacheFile ? { calibCacheFile } : {}),
    engineFile: 'model.engine',
  });
  await writeFile(join(out, ARTIFACT_FILES.trtPlan), `${JSON.stringify(plan, null, 2)}\n`);
  files.push(ARTIFACT_FILES.trtPlan);
  return { files, precision, trtexec: ['trtexec', ...trtexecArgs(plan)] };
}
