import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveOptions } from '../config.js';
import { ARTIFACT_FILES } from '../export/export-names.js';
import { EXPORT_SCHEMA } from '../export/export-schema.js';
import { runExport, type ExportRow } from '../export/run-export.js';
import type { Logger } from '../util/logger.js';

/** What the export stage wrote. */
export interface AdaptExport {
  dir: string;
  /** The formats asked for (`--formats`). */
  formats: string;
  /** export.json: the table and notes of `kd-trainer export`. */
  report: string;
  /** Each format's file, size, figures (on `data`'s val split) and ONNX Runtime p50 on this machine. */
  rows: ExportRow[];
  /** Calibration of int8/trt: images of the adaptation split. */
  calibration?: { images: number; method: string };
  notes: string[];
}

/** What the export stage reports. */
export interface ExportProgress {
  stage: 'export';
  status: 'start' | 'done';
  files?: string[];
}

/** Options of {@link exportAdapted}. */
export interface ExportAdaptedOptions {
  weights: string;
  out: string;
  imgsz: number;
  formats: string;
  /** A data YAML whose val split each artifact is validated on (`--val`'s, else the job's hold-out). */
  data: string;
  /** The job's data.yaml: int8 and trt calibrate on its train split, the adaptation frames. */
  calibData: string;
  calibImages: number;
  workers: number;
  logger: Logger;
}

/**
 * Stage 4 of `kd-trainer adapt`: `kd-trainer export` of the adapted weights into `export/` at the job's
 * image size: ONNX fp32 and, by default, static int8 calibrated on the adaptation frames (the pictures
 * the model will see), each validated and timed. The folder is emptied first, so it never mixes two exports.
 * No INT8 sensitivity report and 10 timed runs per format: the device has better uses for its time.
 */
export async function exportAdapted(o: ExportAdaptedOptions): Promise<AdaptExport> {
  await rm(o.out, { recursive: true, force: true });
  const { config } = resolveOptions(EXPORT_SCHEMA, [{
    weights: o.weights, out: o.out, imgsz: o.imgsz, formats: o.formats, data: o.data, calib_data: o.calibData, calib_split: 'train',
    calib_images: o.calibImages, sensitivity_images: 0, bench_runs: 10, workers: o.workers,
  }]);
  const r = await runExport(config, { logger: o.logger });
  return {
    dir: r.out, formats: o.formats, report: join(r.out, ARTIFACT_FILES.report), rows: r.rows, notes: r.notes,
    ...(r.calibration ? { calibration: { images: r.calibration.images, method: r.calibration.method } } : {}),
  };
}
