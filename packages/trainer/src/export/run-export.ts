import { mkdir, stat, writeFile } from 'node:fs/promises';
import { arch, availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import {
  exportOnnx, formatSensitivityTable, measureOrtLatency, quantizeModel, quantizeQdq, readOnnxFile, writeOnnxFile,
  type ModelProto, type QuantizeReport, type TensorRange,
} from '@kd-edge/core';
import { classifyCalibrationImages } from '../classify/calibration.js';
import { loadClassifyDataset } from '../classify/dataset.js';
import { ClassifyLoader } from '../classify/loader.js';
import { normalisationMetadata } from '../classify/normalisation.js';
import { kdwNormalisation, OnnxClassifier } from '../classify/predictor.js';
import { validateClassifier } from '../classify/validate.js';
import { evalLoader } from '../data/eval-loader.js';
import { SplitReader } from '../data/split-reader.js';
import { ExportError } from '../errors.js';
import { loadModelWeights } from '../model/weights-io.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { OnnxDetectionPredictor } from '../val/onnx-predictor.js';
import { validateWith } from '../val/validator.js';
import { calibrationImages } from './calibration-images.js';
import { ARTIFACT_FILES } from './export-names.js';
import { EXPORT_FORMATS, type ExportConfig, type ExportFormat } from './export-schema.js';
import { artifactTarget, type Int8Variant } from './export-targets.js';
import { onnxModelInfo, type OnnxModelInfo } from './model-info.js';
import { writeTensorrtArtifacts } from './tensorrt-artifacts.js';

/** One row of the export table. */
export interface ExportRow {
  format: ExportFormat;
  file: string;
  /** int8 rows: S8S8 (model.int8.onnx) or U8S8 (model.int8.u8s8.onnx). */
  variant?: Int8Variant;
  /** What the file is for (`x86-64 CPU (ONNX Runtime)`, `TensorRT, ARM64 CPU (ORT)`, …). */
  target?: string;
  bytes: number;
  /** Detection metrics (absent without --data). */
  map50?: number;
  map?: number;
  /** mAP50-95 change from fp32, in points (×100). */
  deltaMapPoints?: number;
  /** Classifier accuracy on the val split (absent without --data). */
  top1?: number;
  top5?: number;
  /** top-1 change from fp32, in points (×100). */
  deltaTop1Points?: number;
  /** ORT CPU latency of one run, median (ms), at batch 1 or at the model's static batch. */
  p50Ms?: number;
  /** The batch p50Ms was measured at. */
  latencyBatch?: number;
  speedup?: number;
}

/** What `kd-trainer export` wrote and measured (also saved as export.json). */
export interface ExportReport {
  out: string;
  source: string;
  info: Omit<OnnxModelInfo, 'input' | 'output'> & { inputName: string; inputShape: (number | string | null)[]; outputName: string; outputShape: (number | string | null)[] };
  opset: number;
  rows: ExportRow[];
  /** Files of the TensorRT format: a calibration cache and a plan per TensorRT version. */
  tensorrt?: { files: string[]; precision: string; trtexec: string[]; versions?: { trtVersion: string; plan: string; calibCache?: string }[] };
  /** The machine the latencies were measured on (`x86_64`, `aarch64`, as `uname -m` says), and its cores. */
  host?: { arch: string; cpus: number };
  calibration?: { method: string; images: number; seconds: number; perImageMs: number; split: string; data: string };
  /** Worst tensors of the INT8 sensitivity report (SQNR dB, lowest first). */
  sensitivityTop?: { tensor: string; opType: string; sqnrDb: number }[];
  notes: string[];
}

/**
 * The Detect head's decode (sigmoid, grid and anchor arithmetic, reshapes; everything under the last
 * `/model.N/` scope except its `m.i` convolutions): kept in float by default, because one per-tensor
 * int8 scale over pixel coordinates (0..640) costs whole pixels of box precision, and these few
 * element-wise ops are cheap. Works for kd-edge and ultralytics exports (both use torch-style scopes).
 */
export function headDecodePattern(model: ModelProto): RegExp | undefined {
  let last = -1;
  for (const n of model.graph?.node ?? []) {
    const m = /^\/model\.(\d+)\//.exec(n.name);
    if (m) last = Math.max(last, Number(m[1]));
  }
  return last < 0 ? undefined : new RegExp(`^/model\\.${last}/(?!m\\.\\d+/)`);
}

/** One note per reason for the nodes a pass left in float (`int8: 3 Pow left in float (op type not in the QDQ registry)`). */
export function summariseSkipped(format: string, skipped: readonly { node: string; opType: string; reason: string }[]): string[] {
  const groups = new Map<string, string[]>();
  for (const s of skipped) {
    if (s.opType === 'Constant') continue; // constants are not computations; nothing to quantize
    const key = `${s.opType}\u0000${s.reason}`;
    groups.set(key, [...(groups.get(key) ?? []), s.node]);
  }
  return [...groups].map(([key, nodes]) => {
    const [op, reason] = key.split('\u0000');
    const shown = nodes.slice(0, 3).join(', ') + (nodes.length > 3 ? ', …' : '');
    return `${format}: ${nodes.length} ${op} left in float (${reason}): ${shown}`;
  });
}

/** Splits `--formats` and checks every name. */
export function parseFormats(text: string): ExportFormat[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!Object.hasOwn(EXPORT_FORMATS, n)) {
      throw new ExportError('EXPORT_FORMAT_UNKNOWN', `--formats: '${n}' is not one of ${Object.keys(EXPORT_FORMATS).join(', ')}`);
    }
  }
  const set = new Set<ExportFormat>(['onnx', ...(names as ExportFormat[])]);
  return (Object.keys(EXPORT_FORMATS) as ExportFormat[]).filter((f) => set.has(f));
}

/** `--exclude a,/re/` → names and regular expressions. */
export function parseExclude(text: string): (string | RegExp)[] {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^\/(.*)\/([a-z]*)$/.exec(s);
    if (m === null) return s;
    try {
      return new RegExp(m[1]!, m[2]);
    } catch (e) {
      throw new ExportError('EXPORT_EXCLUDE_INVALID', `--exclude: ${s} is not a valid regular expression (${(e as Error).message})`);
    }
  });
}

async function baseModel(cfg: ExportConfig, log: Logger): Promise<{ model: ModelProto; source: string }> {
  const src = resolve(cfg.weights);
  if (src.endsWith('.onnx')) {
    log.info(`reading ${src}`);
    return { model: await readOnnxFile(src), source: src };
  }
  const { description, weights, meta } = await loadModelWeights(src);
  const names = Array.isArray(meta.names) ? (meta.names as string[]) : undefined;
  // A classifier's input is normalised (ImageNet mean/std, as ultralytics): say so in the file.
  const metadata = description.type === 'classifier' ? normalisationMetadata(kdwNormalisation(meta)) : undefined;
  try {
    const onnx = exportOnnx(description, weights, {
      imgsz: cfg.imgsz, opset: cfg.opset as 13 | 17, batch: cfg.batch_size, dynamic: cfg.dynamic, raw: cfg.raw, names,
      producerVersion: '0.1.0', ...(metadata ? { metadata } : {}),
    });
    return { model: onnx, source: src };
  } catch (e) {
    if (e instanceof RangeError) throw new ExportError('EXPORT_INVALID', `${src}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** top-1 and top-5 of an ONNX classifier on the val split of a classification dataset folder. */
async function validateClassifierFile(file: string, info: OnnxModelInfo, cfg: ExportConfig, log: Logger): Promise<{ top1: number; top5: number }> {
  const data = await loadClassifyDataset(cfg.data, log, { train: false });
  if (data.names.length !== info.nc) throw new ExportError('EXPORT_MODEL_LAYOUT', `${file} has ${info.nc} classes but ${data.root} has ${data.names.length}`);
  const clf = await OnnxClassifier.open(file);
  try {
    const imgsz = info.imgsz?.[0] ?? cfg.imgsz;
    const loader = new ClassifyLoader(data.val, { imgsz, batchSize: cfg.val_batch, normalisation: clf.normalisation, logger: log });
    const r = await validateClassifier((b) => clf.predict(b.images, b.n, b.size, b.size), loader.epoch(0), clf.nc);
    return { top1: r.top1, top5: r.top5 };
  } finally {
    await clf.close();
  }
}

async function validateFile(file: string, info: OnnxModelInfo, cfg: ExportConfig, reader: SplitReader, log: Logger): Promise<{ map50: number; map: number } | { top1: number; top5: number } | undefined> {
  if (cfg.data !== '' && info.task === 'classify') return validateClassifierFile(file, info, cfg, log);
  if (cfg.data === '' || info.task !== 'detect' || info.outputLayout !== 'yolov5-decoded') return undefined;
  const data = await reader.config(cfg.data);
  if (data.nc !== info.nc) throw new ExportError('EXPORT_MODEL_LAYOUT', `${file} has ${info.nc} classes but ${data.file} has ${data.nc}`);
  const items = await reader.items(cfg.data, 'val');
  const loader = evalLoader(items, { imgsz: info.imgsz?.[0] ?? cfg.imgsz, batchSize: cfg.val_batch, workers: cfg.workers, logger: log });
  const predictor = await OnnxDetectionPredictor.open(file, info.nc);
  try {
    const r = await validateWith(predictor, loader.epoch(0), { confThres: cfg.conf_thres, iouThres: cfg.iou_thres });
    return { map50: r.map50, map: r.map };
  } finally {
    await predictor.close();
    await loader.close();
  }
}

/** The export table as text lines (ultralytics-style columns; top-1/top-5 instead of mAP for classifiers). */
export function formatExportTable(rows: readonly ExportRow[]): string[] {
  const cls = rows.some((r) => r.top1 !== undefined);
  const [m1, m2] = cls ? ['top1_acc', 'top5_acc'] : ['mAP50', 'mAP50-95'];
  const fileWidth = Math.max(26, ...rows.map((r) => r.file.length + 1));
  const head = `${'Format'.padEnd(14)}${'File'.padEnd(fileWidth)}${'Size (MB)'.padStart(10)}${m1.padStart(cls ? 10 : 8)}${m2.padStart(10)}${'Δ (pts)'.padStart(9)}${'p50 (ms)'.padStart(10)}${'Speed-up'.padStart(10)}  Target`;
  const f = (v: number | undefined, d: number, w: number): string => (v === undefined ? '—' : v.toFixed(d)).padStart(w);
  return [
    head,
    ...rows.map((r) => ({ r, d: cls ? r.deltaTop1Points : r.deltaMapPoints })).map(({ r, d }) => `${(r.variant ? `${r.format} ${r.variant}` : r.format).padEnd(14)}${r.file.padEnd(fileWidth)}${f(r.format === 'trt' ? undefined : r.bytes / 1e6, 2, 10)}` +
      `${cls ? `${f(r.top1, 3, 10)}${f(r.top5, 3, 10)}` : `${f(r.map50, 3, 8)}${f(r.map, 3, 10)}`}` +
      `${(d === undefined ? '—' : `${d >= 0 ? '+' : ''}${d.toFixed(1)}`).padStart(9)}` +
      `${f(r.p50Ms, 2, 10)}${(r.speedup === undefined ? '—' : `${r.speedup.toFixed(2)}×`).padStart(10)}${r.target ? `  ${r.target}` : ''}`),
    ...(rows.some((r) => (r.latencyBatch ?? 1) > 1) ? [`p50: one ONNX Runtime run of the static batch of ${rows[0]!.latencyBatch}`] : []),
  ];
}

/**
 * `kd-trainer export`: writes model.onnx (from .kdw weights, or the ONNX file given), then each
 * requested format, then validates every ONNX artifact on the val split and times it in ONNX
 * Runtime at batch 1, and prints the table. Every file is written atomically.
 */
export async function runExport(cfg: ExportConfig, opts: { logger?: Logger } = {}): Promise<ExportReport> {
  const log = opts.logger ?? silentLogger;
  const formats = parseFormats(cfg.formats);
  const userExclude = parseExclude(cfg.exclude);
  if (cfg.opset !== 13 && cfg.opset !== 17) throw new ExportError('EXPORT_OPSET', `--opset: ${cfg.opset} is not 13 or 17`);
  const out = resolve(cfg.out || join(dirname(resolve(cfg.weights)), 'export'));
  await mkdir(out, { recursive: true });
  const notes: string[] = [];
  // One scan per split: the val split serves every artifact's check (and calibration, when it is the split).
  const reader = new SplitReader(log);

  const { model, source } = await baseModel(cfg, log);
  const info = onnxModelInfo(model, source);
  const head = cfg.quantize_head || info.task !== 'detect' ? undefined : headDecodePattern(model);
  const exclude = head ? [...userExclude, head] : userExclude;
  if (head) notes.push(`int8: the Detect decode (${head.source}) stays in float; --quantize-head quantizes it too`);
  if (info.assumedAnchors) notes.push('strides and anchors are not in the model metadata: YOLOv5 defaults assumed');
  const imgsz = info.imgsz ?? [cfg.imgsz, cfg.imgsz];
  const batch = info.batch ?? 1;
  const inputShape = [batch, 3, imgsz[0], imgsz[1]];
  const artifacts: { format: ExportFormat; file: string; variant?: Int8Variant }[] = [];
  await writeOnnxFile(join(out, ARTIFACT_FILES.onnx), model);
  artifacts.push({ format: 'onnx', file: ARTIFACT_FILES.onnx });
  log.info(`wrote ${join(out, ARTIFACT_FILES.onnx)}`);

  if (formats.includes('fp16')) {
    const { model: m, report } = await quantizeModel(model, { mode: 'fp16' });
    notes.push(...report.notes.map((n) => `fp16: ${n}`));
    await writeOnnxFile(join(out, ARTIFACT_FILES.fp16), m);
    artifacts.push({ format: 'fp16', file: ARTIFACT_FILES.fp16 });
  }
  if (formats.includes('int8-dynamic')) {
    const { model: m, report } = await quantizeModel(model, { mode: 'int8-weights', exclude });
    notes.push(...summariseSkipped('int8-dynamic', report.skipped));
    await writeOnnxFile(join(out, ARTIFACT_FILES['int8-dynamic']), m);
    artifacts.push({ format: 'int8-dynamic', file: ARTIFACT_FILES['int8-dynamic'] });
  }

  let calibration: ExportReport['calibration'];
  let ranges: ReadonlyMap<string, TensorRange> | undefined;
  let sensitivityTop: ExportReport['sensitivityTop'];
  if (formats.includes('int8') || formats.includes('trt')) {
    const calibData = cfg.calib_data || cfg.data;
    if (calibData === '') throw new ExportError('EXPORT_NEEDS_CALIBRATION', 'int8 and trt need calibration images: give --calib-data (or --data) with a dataset YAML (a dataset folder for a classifier)');
    const cal = info.task === 'classify'
      ? await classifyCalibrationImages({ root: calibData, split: cfg.calib_split, images: cfg.calib_images, imgsz: imgsz[0], batch, normalisation: info.normalisation, logger: log })
      : await calibrationImages({ data: calibData, split: cfg.calib_split, images: cfg.calib_images, imgsz: imgsz[0], batch, workers: cfg.workers, logger: log, reader });
    log.info(`calibrating on ${cal.count} images (${cfg.calib_method})…`);
    // One calibration: the first variant gets the ranges (and the sensitivity report), the other reuses them.
    const variants: Int8Variant[] = cfg.activation_type === 'both' ? ['S8S8', 'U8S8'] : cfg.activation_type === 'uint8' ? ['U8S8'] : ['S8S8'];
    const actType = (v: Int8Variant): 'int8' | 'uint8' => (v === 'U8S8' ? 'uint8' : 'int8');
    const t0 = performance.now();
    const { model: q, report } = await quantizeModel(model, {
      mode: 'int8',
      calibration: { batches: cal.batches, inputShape },
      method: cfg.calib_method,
      exclude,
      activationSymmetric: cfg.activation_symmetric,
      activationType: actType(variants[0]!),
      sensitivity: cfg.sensitivity_images > 0 ? { maxBatches: Math.ceil(cfg.sensitivity_images / batch) } : false,
    });
    const seconds = (performance.now() - t0) / 1000;
    calibration = { method: cfg.calib_method, images: cal.count, seconds, perImageMs: (seconds * 1000) / cal.count, split: cfg.calib_split, data: calibData };
    ranges = report.ranges;
    notes.push(...summariseSkipped('int8', report.skipped));
    if (formats.includes('int8')) {
      const fileOf = (v: Int8Variant): string => (v === 'U8S8' ? ARTIFACT_FILES.int8U8s8 : ARTIFACT_FILES.int8);
      await writeOnnxFile(join(out, fileOf(variants[0]!)), q);
      artifacts.push({ format: 'int8', file: fileOf(variants[0]!), variant: variants[0]! });
      for (const v of variants.slice(1)) {
        const other = quantizeQdq(model, { ranges: report.ranges!, exclude, activationSymmetric: cfg.activation_symmetric, activationType: actType(v) });
        await writeOnnxFile(join(out, fileOf(v)), other.model);
        artifacts.push({ format: 'int8', file: fileOf(v), variant: v });
      }
      if (variants.length > 1 && report.sensitivity !== undefined) notes.push(`int8: the sensitivity report is of ${variants[0]} (both files share its scales)`);
    }
    sensitivityTop = writeSensitivity(report);
    if (report.sensitivity !== undefined) {
      await writeFile(join(out, ARTIFACT_FILES.sensitivity), formatSensitivityTable(report.sensitivity) + '\n');
    }
  }

  let tensorrt: ExportReport['tensorrt'];
  if (formats.includes('trt')) {
    tensorrt = await writeTensorrtArtifacts(out, model, ranges, cfg, inputShape, info);
  }

  // Validate and time every ONNX artifact.
  const rows: ExportRow[] = [];
  for (const { format, file, variant } of artifacts) {
    const path = join(out, file);
    const bytes = (await stat(path)).size;
    log.info(`${format}: validating and timing ${file}`);
    const metrics = await validateFile(path, info, cfg, reader, log);
    // A static batch can only be run whole (a teacher exported with --batch-size 16, say).
    const latencyBatch = batch;
    const lat = await measureOrtLatency(path, { runs: cfg.bench_runs, warmup: 5, inputDims: { [info.input.name]: [latencyBatch, 3, imgsz[0], imgsz[1]] } });
    rows.push({ format, file, ...(variant ? { variant } : {}), target: artifactTarget(format, variant), bytes, ...(metrics ?? {}), p50Ms: lat.p50, latencyBatch });
  }
  const base = rows[0]!;
  for (const r of rows) {
    if (r.map !== undefined && base.map !== undefined) r.deltaMapPoints = (r.map - base.map) * 100;
    if (r.top1 !== undefined && base.top1 !== undefined) r.deltaTop1Points = (r.top1 - base.top1) * 100;
    if (r.p50Ms !== undefined && base.p50Ms !== undefined) r.speedup = base.p50Ms / r.p50Ms;
  }
  if (formats.includes('trt') && tensorrt !== undefined) {
    const versions = (tensorrt.versions ?? []).map((v) => v.trtVersion);
    const file = cfg.trt_versions.trim() === '' ? tensorrt.files.join(', ') : 'calib.<v>.cache, trt-plan.<v>.json';
    rows.push({ format: 'trt', file, target: artifactTarget('trt', undefined, versions), bytes: 0 });
  }

  const { input, output, ...rest } = info;
  const report: ExportReport = {
    out, source, opset: model.opsetImport.find((o) => o.domain === '')?.version ?? 0, rows, notes, host: { arch: unameArch(), cpus: availableParallelism() },
    info: { ...rest, inputName: input.name, inputShape: input.shape ?? [], outputName: output.name, outputShape: output.shape ?? [] },
    ...(tensorrt ? { tensorrt } : {}), ...(calibration ? { calibration } : {}), ...(sensitivityTop ? { sensitivityTop } : {}),
  };
  await writeFile(join(out, ARTIFACT_FILES.report), `${JSON.stringify(report, null, 2)}\n`);
  log.info(`export folder: ${out} (${basename(out)}/${ARTIFACT_FILES.report} has these figures)`);
  return report;
}

/** This machine's architecture as `uname -m` spells it (Node says x64 and arm64). */
function unameArch(): string {
  const a = arch();
  return a === 'x64' ? 'x86_64' : a === 'arm64' ? 'aarch64' : a === 'arm' ? 'armv7l' : a;
}

function writeSensitivity(report: QuantizeReport): ExportReport['sensitivityTop'] {
  return report.sensitivity?.slice(0, 10).map((r) => ({ tensor: r.tensor, opType: r.opType, sqnrDb: r.sqnrDb }));
}
