import {
  DEFAULT_ANCHORS, encodeModel, inspectModel, KdEdgeError, readOnnxFile, withExtraOutputs, type ModelProto,
} from '@kd-edge/core';
import * as ort from 'onnxruntime-node';
import { onnxModelInfo, type OnnxModelInfo } from '../../export/model-info.js';
import { nhwcToNchw } from '../../val/onnx-predictor.js';
import type { FeatureMap, HeadGeometry, Teacher, TeacherOutput } from '../types.js';
import { anchorsFromGraph } from '../../import/graph-anchors.js';
import { invertDecoded, rawLevelToNhwc, type HeadLevelGeometry } from './head-logits.js';
import { TeacherError } from './teacher-error.js';
import { requireTeacherFile, sha256File } from './teacher-file.js';

/** ONNX Runtime execution providers a teacher may run on. */
export type TeacherExecutionProvider = 'cpu' | 'cuda';

/** Options of {@link OnnxTeacher.open}. */
export interface OnnxTeacherOptions {
  /** Intermediate tensors (e.g. '/model.17/cv3/act/Mul_output_0') returned as feature maps, NCHW. */
  features?: readonly string[];
  /** Passed to InferenceSession.create (after the defaults; executionProviders wins over this). */
  sessionOptions?: ort.InferenceSession.SessionOptions;
  /**
   * Default ['cpu']. 'cuda' needs onnxruntime-node's CUDA binaries, which this repository does not
   * install by default (docs/backends.md).
   */
  executionProviders?: readonly TeacherExecutionProvider[];
}

/** Where a detector teacher's anchors came from. */
export type AnchorSource = 'metadata' | 'graph' | 'assumed';

interface Layout {
  inputName: string;
  outputs: string[];
  layout: OnnxModelInfo['outputLayout'];
}

const PROVIDERS: readonly TeacherExecutionProvider[] = ['cpu', 'cuda'];

function layoutError(file: string, why: string, cause?: unknown): TeacherError {
  return new TeacherError('DISTILL_TEACHER_LAYOUT', `teacher ${file}: ${why}`, cause === undefined ? undefined : { cause });
}

function readInfo(model: ModelProto, file: string): OnnxModelInfo {
  try {
    return onnxModelInfo(model, file);
  } catch (err) {
    if (err instanceof KdEdgeError) throw layoutError(file, err.message.replace(`${file}: `, ''), err);
    throw err;
  }
}

function headAnchors(model: ModelProto, info: OnnxModelInfo): { anchors: number[][]; source: AnchorSource } {
  const meta = inspectModel(model).metadata;
  if (meta.anchors !== undefined) return { anchors: info.anchors, source: 'metadata' };
  const fromGraph = anchorsFromGraph(model, info.strides.length);
  if (fromGraph !== undefined) return { anchors: fromGraph, source: 'graph' };
  return { anchors: DEFAULT_ANCHORS.map((a) => [...a]), source: 'assumed' };
}

function checkFeatures(model: ModelProto, file: string, features: readonly string[]): void {
  if (!Array.isArray(features) || !features.every((f) => typeof f === 'string' && f.length > 0)) {
    throw new TypeError('features: expected an array of tensor names');
  }
  const produced = new Set<string>();
  for (const n of model.graph?.node ?? []) for (const o of n.output) if (o !== '') produced.add(o);
  const missing = features.filter((f) => !produced.has(f));
  if (missing.length === 0) return;
  const all = [...produced];
  const hints = missing.map((f) => {
    // Suggest names from the same module scope ('/model.17/'), which is how people misspell them.
    const scope = /^\/[^/]+\//.exec(f)?.[0];
    const near = all.filter((n) => scope !== undefined && n.startsWith(scope)).slice(0, 4);
    return `'${f}'${near.length > 0 ? ` (in that scope: ${near.join(', ')}${all.filter((n) => n.startsWith(scope!)).length > 4 ? ', …' : ''})` : ''}`;
  });
  throw new TeacherError(
    'DISTILL_FEATURE_UNKNOWN',
    `teacher ${file}: no node produces ${hints.join('; ')}; feature names are node outputs such as '${all.find((n) => n.endsWith('act/Mul_output_0')) ?? all[0] ?? '?'}'`,
  );
}

function findLayout(info: OnnxModelInfo, file: string, outputNames: readonly string[], levels: number): Layout {
  if (info.outputLayout === 'yolov5-raw') {
    const outputs = Array.from({ length: levels }, (_, l) => `output${l}`);
    const absent = outputs.filter((o) => !outputNames.includes(o));
    if (absent.length > 0) throw layoutError(file, `raw head layout but no output ${absent.join(', ')} (outputs: ${outputNames.join(', ')})`);
    return { inputName: info.input.name, outputs, layout: info.outputLayout };
  }
  const rank = info.output.shape?.length;
  const want = info.outputLayout === 'logits' ? 2 : 3;
  if (rank !== undefined && rank !== want) {
    throw layoutError(file, `output ${info.output.name} has shape [${info.output.shape!.join(', ')}]; a ${info.outputLayout} teacher has rank ${want}`);
  }
  return { inputName: info.input.name, outputs: [info.output.name], layout: info.outputLayout };
}

async function createSession(
  file: string, what: string | Uint8Array, opts: OnnxTeacherOptions,
): Promise<ort.InferenceSession> {
  const providers = opts.executionProviders ?? ['cpu'];
  for (const p of providers) {
    if (!PROVIDERS.includes(p)) throw new RangeError(`executionProviders: '${String(p)}' is not one of ${PROVIDERS.join(', ')}`);
  }
  try {
    // Severity 3 (errors only): ORT's load-time warnings would otherwise go straight to stderr.
    const options: ort.InferenceSession.SessionOptions = { logSeverityLevel: 3, ...opts.sessionOptions, executionProviders: [...providers] };
    return typeof what === 'string' ? await ort.InferenceSession.create(what, options) : await ort.InferenceSession.create(what, options);
  } catch (err) {
    const hint = providers.includes('cuda')
      ? '; the CUDA execution provider needs onnxruntime-node built with its CUDA binaries (see docs/backends.md, "ONNX Runtime"), or use the cpu provider'
      : '';
    throw new TeacherError('DISTILL_RUNTIME', `teacher ${file}: ONNX Runtime could not load it on ${providers.join(', ')}: ${(err as Error).message}${hint}`, { cause: err });
  }
}

/**
 * A frozen teacher in an ONNX file, run by onnxruntime-node: kd-edge exports (decoded or raw heads,
 * classifiers) and ultralytics YOLOv5 exports. For a decoded detector the raw logits are recovered by
 * inverting the decode (see {@link invertDecoded}; probabilities are clamped to [1e-6, 1 − 1e-6], so
 * recovered logits lie within ±13.8: a float32 sigmoid saturated at 1.0 has lost its logit). A static
 * batch is honoured by running chunks of it, the last one zero-padded.
 * @example
 * const teacher = await OnnxTeacher.open('yolov5s.onnx', { features: ['/model.17/cv3/act/Mul_output_0'] });
 * const out = await teacher.predict(images, 8, 320, 320); // out.levels[0].data: [8, 40, 40, 3·85]
 */
export class OnnxTeacher implements Teacher {
  readonly kind = 'onnx' as const;

  private constructor(
    readonly source: string,
    private readonly session: ort.InferenceSession,
    private readonly io: Layout,
    readonly task: 'detect' | 'classify',
    readonly nc: number,
    /** Class names from the metadata (class0… when there are none). */
    readonly names: string[],
    readonly head: HeadGeometry | undefined,
    /** Where the anchors came from: metadata, the graph's anchor grid, or YOLOv5's defaults (assumed). */
    readonly anchorSource: AnchorSource | undefined,
    readonly imgsz: [number, number] | undefined,
    readonly batch: number | undefined,
    readonly fileHash: string,
    readonly paramCount: number,
    /** Tensor names returned as feature maps, in the order asked for. */
    readonly featureNames: readonly string[],
  ) {}

  /** 'yolov5-decoded', 'yolov5-raw' or 'logits'. */
  get outputLayout(): OnnxModelInfo['outputLayout'] {
    return this.io.layout;
  }

  /** Opens `file`, reads its layout and metadata, and starts an ONNX Runtime session. */
  static async open(file: string, opts: OnnxTeacherOptions = {}): Promise<OnnxTeacher> {
    await requireTeacherFile(file);
    const model = await readOnnxFile(file);
    const info = readInfo(model, file);
    const features = [...new Set(opts.features ?? [])];
    checkFeatures(model, file, features);
    let head: HeadGeometry | undefined;
    let anchorSource: AnchorSource | undefined;
    if (info.task === 'detect') {
      const { anchors, source } = headAnchors(model, info);
      if (anchors.length !== info.strides.length || anchors.some((a) => a.length === 0 || a.length % 2 !== 0 || a.length !== anchors[0]!.length)) {
        throw layoutError(file, `anchors ${JSON.stringify(anchors)} do not give the same number of anchors for each of ${info.strides.length} levels (strides ${JSON.stringify(info.strides)})`);
      }
      head = { nc: info.nc, strides: [...info.strides], anchors };
      anchorSource = source;
    }
    const outputNames = model.graph!.output.map((o) => o.name);
    const io = findLayout(info, file, outputNames, head?.strides.length ?? 0);
    if (info.outputLayout === 'yolov5-decoded' && info.imgsz !== undefined && head !== undefined) {
      const rows = info.output.shape?.[1];
      const want = expectedRows(head, info.imgsz[0], info.imgsz[1]);
      if (typeof rows === 'number' && rows !== want) {
        throw layoutError(file, `output ${info.output.name} has ${rows} rows; strides ${JSON.stringify(head.strides)} with ${head.anchors[0]!.length / 2} anchors at ${info.imgsz[0]}×${info.imgsz[1]} give ${want}${anchorSource === 'assumed' ? ' (strides and anchors are not in the metadata; YOLOv5 P3-P5 defaults were assumed)' : ''}`);
      }
    }
    const paramCount = inspectModel(model).floatParameterCount;
    const bytes = features.length > 0 ? encodeModel(withExtraOutputs(model, features)) : undefined;
    // Hash first: a session made before a failing hash would be left unreleased.
    const fileHash = await sha256File(file);
    const session = await createSession(file, bytes ?? file, opts);
    return new OnnxTeacher(
      file, session, io, info.task, info.nc, info.names, head, anchorSource, info.imgsz, info.batch, fileHash, paramCount, features,
    );
  }

  async predict(images: Float32Array, n: number, height: number, width: number): Promise<TeacherOutput> {
    const t0 = performance.now();
    checkBatch(images, n, height, width);
    if (this.imgsz !== undefined && (this.imgsz[0] !== height || this.imgsz[1] !== width)) {
      throw new TeacherError('DISTILL_INPUT_MISMATCH', `teacher ${this.source} takes ${this.imgsz[0]}×${this.imgsz[1]} images but the batch is ${height}×${width}; train at the teacher's image size`);
    }
    const levels = this.head === undefined ? undefined : this.levelGeometry(height, width);
    const no = this.nc + 5;
    const outLevels = levels?.map((lv) => new Float32Array(n * lv.ny * lv.nx * (lv.anchors.length / 2) * no));
    const logits = this.task === 'classify' ? new Float32Array(n * this.nc) : undefined;
    const features = new Map<string, FeatureMap>();
    const nchw = nhwcToNchw(images, n, height, width);
    const chunk = this.batch ?? n;
    const per = 3 * height * width;
    const fetches = [...this.io.outputs, ...this.featureNames];
    for (let i = 0; i < n; i += chunk) {
      const m = Math.min(chunk, n - i);
      let input: Float32Array;
      if (chunk === n) input = nchw;
      else {
        // A fresh zero-filled buffer per chunk: the last one is padded with zeros, and ORT may keep a view.
        input = new Float32Array(chunk * per);
        input.set(nchw.subarray(i * per, (i + m) * per));
      }
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await this.session.run({ [this.io.inputName]: new ort.Tensor('float32', input, [chunk, 3, height, width]) }, fetches);
      } catch (err) {
        throw new TeacherError('DISTILL_RUNTIME', `teacher ${this.source}: ONNX Runtime failed on a ${chunk}×3×${height}×${width} batch: ${(err as Error).message}`, { cause: err });
      }
      try {
        if (levels !== undefined) this.takeLevels(out, m, chunk, levels, outLevels!, i);
        else this.takeLogits(out, m, chunk, logits!, i);
        for (const name of this.featureNames) takeFeature(this.source, name, out[name]!, m, chunk, n, i, features);
      } finally {
        for (const t of Object.values(out)) t.dispose();
      }
    }
    const result: TeacherOutput = { ms: 0 };
    if (levels !== undefined) result.levels = levels.map((lv, l) => ({ data: outLevels![l]!, ny: lv.ny, nx: lv.nx }));
    if (logits !== undefined) result.logits = logits;
    if (this.featureNames.length > 0) result.features = features;
    result.ms = performance.now() - t0;
    return result;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }

  private levelGeometry(height: number, width: number): HeadLevelGeometry[] {
    const head = this.head!;
    return head.strides.map((stride, l) => {
      if (height % stride !== 0 || width % stride !== 0) {
        throw new TeacherError('DISTILL_INPUT_MISMATCH', `teacher ${this.source}: ${height}×${width} is not a multiple of stride ${stride}`);
      }
      return { ny: height / stride, nx: width / stride, stride, anchors: head.anchors[l]! };
    });
  }

  private takeLevels(out: ort.InferenceSession.ReturnType, m: number, chunk: number, levels: HeadLevelGeometry[], dst: Float32Array[], b0: number): void {
    const no = this.nc + 5;
    if (this.io.layout === 'yolov5-raw') {
      levels.forEach((lv, l) => {
        const t = out[this.io.outputs[l]!]!;
        const na = lv.anchors.length / 2;
        const want = [chunk, na, lv.ny, lv.nx, no];
        if (t.dims.length !== 5 || t.dims.some((d, k) => d !== want[k])) {
          throw layoutError(this.source, `output ${this.io.outputs[l]} is [${t.dims.join(', ')}], expected [${want.join(', ')}]`);
        }
        rawLevelToNhwc(t.data as Float32Array, m, na, lv.ny, lv.nx, no, dst[l]!, b0);
      });
      return;
    }
    const t = out[this.io.outputs[0]!]!;
    const rows = levels.reduce((a, lv) => a + (lv.anchors.length / 2) * lv.ny * lv.nx, 0);
    if (t.dims.length !== 3 || t.dims[0] !== chunk || t.dims[1] !== rows || t.dims[2] !== no) {
      throw layoutError(this.source, `output ${this.io.outputs[0]} is [${t.dims.join(', ')}], expected [${chunk}, ${rows}, ${no}] for strides ${JSON.stringify(this.head!.strides)}${this.anchorSource === 'assumed' ? ' (assumed: not in the metadata)' : ''}`);
    }
    invertDecoded(t.data as Float32Array, m, this.nc, levels, dst, b0);
  }

  private takeLogits(out: ort.InferenceSession.ReturnType, m: number, chunk: number, dst: Float32Array, b0: number): void {
    const t = out[this.io.outputs[0]!]!;
    if (t.dims.length !== 2 || t.dims[0] !== chunk || t.dims[1] !== this.nc) {
      throw layoutError(this.source, `output ${this.io.outputs[0]} is [${t.dims.join(', ')}], expected [${chunk}, ${this.nc}]`);
    }
    dst.set((t.data as Float32Array).subarray(0, m * this.nc), b0 * this.nc);
  }
}

function expectedRows(head: HeadGeometry, h: number, w: number): number {
  return head.strides.reduce((a, s, l) => a + (head.anchors[l]!.length / 2) * Math.floor(h / s) * Math.floor(w / s), 0);
}

function checkBatch(images: Float32Array, n: number, height: number, width: number): void {
  if (!(images instanceof Float32Array)) throw new TypeError('images: expected a Float32Array (NHWC, 0..1)');
  for (const [k, v] of [['n', n], ['height', height], ['width', width]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k}: expected a positive integer, got ${String(v)}`);
  }
  if (images.length !== n * height * width * 3) {
    throw new RangeError(`images: ${images.length} values, but ${n}×${height}×${width}×3 needs ${n * height * width * 3}`);
  }
}

function takeFeature(source: string, name: string, t: ort.Tensor, m: number, chunk: number, n: number, b0: number, into: Map<string, FeatureMap>): void {
  const d = t.dims;
  if (t.type !== 'float32' || d.length !== 4 || d[0] !== chunk) {
    throw new TeacherError('DISTILL_FEATURE_UNKNOWN', `teacher ${source}: feature ${name} is ${t.type} [${d.join(', ')}]; feature distillation needs a float32 [N, C, H, W] map`);
  }
  const [, c, h, w] = d as [number, number, number, number];
  const size = c * h * w;
  let map = into.get(name);
  if (map === undefined) {
    map = { data: new Float32Array(n * size), shape: [n, c, h, w] };
    into.set(name, map);
  }
  map.data.set((t.data as Float32Array).subarray(0, m * size), b0 * size);
}
