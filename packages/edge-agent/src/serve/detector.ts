import {
  decodeYoloOutputs, nonMaxSuppression, scaleBoxes, type BoxXYXY, type Manifest, type YoloHeadLevel,
} from '@kd-edge/core';
import * as ort from 'onnxruntime-node';
import { decodeToRgb, type RawImage } from './decode-image.js';
import { letterboxToTensor, type PreparedInput, type PreprocessSpec } from './preprocess.js';
import { ServeError } from './serve-error.js';

/** An output tensor as a session or runtime returns it. */
export interface TensorLike {
  dims: readonly number[];
  data: unknown;
}

/** An onnxruntime-node `InferenceSession`, or anything shaped like one. */
export interface SessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, TensorLike>>;
  release?(): Promise<void>;
}

/** A runtime that feeds one float32 tensor to its first input (the agent's `OrtRuntime` has this shape). */
export interface RuntimeLike {
  readonly inputs: readonly { name: string }[];
  readonly outputs: readonly { name: string }[];
  run(data: Float32Array, dims: readonly number[]): Promise<Record<string, TensorLike>>;
  dispose?(): Promise<void>;
}

/** What the detector needs of a package manifest (a whole {@link Manifest} will do). */
export type DetectorModel = Pick<Manifest, 'input' | 'output' | 'names' | 'strides' | 'anchors'> &
  Partial<Pick<Manifest, 'name' | 'version'>>;

/** Thresholds of one detection call; defaults are ultralytics detect.py's. */
export interface DetectOptions {
  /** Minimum score (objectness · class), default 0.25. */
  conf?: number;
  /** NMS IoU threshold, default 0.45. */
  iou?: number;
  /** At most this many detections, default 300. */
  maxDet?: number;
}

/** Options of {@link Detector}. */
export interface DetectorOptions extends DetectOptions {
  /** Input [height, width] when the model's spatial dims are symbolic; ignored when they are numbers. */
  imgsz?: number | [number, number];
  /** Release the session or runtime in {@link Detector.dispose} (default true). */
  ownsBackend?: boolean;
}

/** One detection in source-image pixels. */
export interface ServeDetection {
  cls: number;
  /** Class name from the manifest. */
  name: string;
  score: number;
  box: BoxXYXY;
}

/** Where a detection call spent its time, in milliseconds. */
export interface DetectTimings {
  /** Decode, letterbox and normalisation. */
  preMs: number;
  /** The runtime's run call. */
  inferMs: number;
  /** Decoding of raw heads, NMS and scaling back. */
  postMs: number;
}

/** The result of {@link Detector.detect}. */
export interface DetectResult {
  detections: ServeDetection[];
  timings: DetectTimings;
  /** Size of the source image. */
  width: number;
  height: number;
}

/** An image to detect on: encoded bytes (JPEG, PNG, WebP, BMP, …) or raw pixels. */
export type DetectorImage = Uint8Array | RawImage;

type Runner = (data: Float32Array, dims: readonly number[]) => Promise<Record<string, TensorLike>>;

function layoutError(message: string): ServeError {
  return new ServeError('SERVE_MODEL_LAYOUT', message);
}

function checkProbability(name: string, v: number | undefined): void {
  if (v !== undefined && !(v >= 0 && v <= 1)) throw new RangeError(`${name} must be within [0, 1], got ${v}`);
}

function checkOptions(o: DetectOptions): void {
  checkProbability('conf', o.conf);
  checkProbability('iou', o.iou);
  if (o.maxDet !== undefined && !(Number.isInteger(o.maxDet) && o.maxDet >= 0)) {
    throw new RangeError(`maxDet must be a non-negative integer, got ${o.maxDet}`);
  }
}

function asFloat32(t: TensorLike, name: string): Float32Array {
  if (!(t.data instanceof Float32Array)) throw layoutError(`output ${name} is not float32`);
  return t.data;
}

/**
 * A YOLOv5 detector on an ONNX model and its manifest: decode and letterbox the image, run the
 * model, decode raw heads when the model has no decode step, NMS, and map boxes back to source pixels.
 * @example
 * const detector = await Detector.open('pkg/model.onnx', manifest);
 * const { detections } = await detector.detect(await readFile('frame.jpg'));
 * await detector.dispose();
 */
export class Detector {
  /** Model name and version from the manifest, when it has them. */
  readonly name: string | undefined;
  readonly version: string | undefined;
  /** Class names, index = class id. */
  readonly names: readonly string[];
  /** Model input [height, width]. */
  readonly inputSize: [number, number];
  readonly #run: Runner;
  readonly #release: (() => Promise<void>) | undefined;
  readonly #model: DetectorModel;
  readonly #pre: PreprocessSpec;
  readonly #outputNames: readonly string[];
  readonly #defaults: DetectOptions;
  #disposed: Promise<void> | undefined;

  /**
   * Wraps a session (`inputNames`, `outputNames`, `run(feeds)`) or a runtime (`inputs`, `outputs`,
   * `run(data, dims)`). Throws SERVE_MODEL_LAYOUT when the manifest and the model disagree.
   */
  constructor(backend: SessionLike | RuntimeLike, model: DetectorModel, options: DetectorOptions = {}) {
    checkOptions(options);
    const { input, output, names, strides, anchors } = model;
    if (output.layout !== 'yolov5-decoded' && output.layout !== 'yolov5-raw') {
      throw layoutError(`output layout '${output.layout}' is not a detector layout ('yolov5-decoded' | 'yolov5-raw')`);
    }
    if (input.letterbox === undefined) throw layoutError('the manifest input has no letterbox settings');
    const { mean, std } = input.normalisation;
    if (mean.length !== 3 || std.length !== 3) throw layoutError(`normalisation needs 3 channels, got mean ${mean.length}, std ${std.length}`);
    if (input.shape.length !== 4 || (typeof input.shape[1] === 'number' && input.shape[1] !== 3)) {
      throw layoutError(`input shape [${input.shape.join(', ')}] is not [N, 3, H, W]`);
    }
    if (output.layout === 'yolov5-raw' && (strides.length === 0 || anchors.length !== strides.length)) {
      throw layoutError(`raw heads need one anchor row per stride, got ${anchors.length} rows for ${strides.length} strides`);
    }
    const [, , h, w] = input.shape;
    let size: [number, number];
    const dynamic = typeof h !== 'number' || typeof w !== 'number';
    if (!dynamic) size = [h, w];
    else if (options.imgsz !== undefined) size = typeof options.imgsz === 'number' ? [options.imgsz, options.imgsz] : [...options.imgsz];
    else throw layoutError(`input shape [${input.shape.join(', ')}] has symbolic height or width; pass imgsz`);
    if (!size.every((s) => Number.isInteger(s) && s > 0)) throw new RangeError(`imgsz must be positive integers, got ${JSON.stringify(size)}`);
    const batch = typeof input.shape[0] === 'number' ? input.shape[0] : 1;

    const owns = options.ownsBackend ?? true;
    if ('inputNames' in backend) {
      if (!backend.inputNames.includes(input.name)) {
        throw layoutError(`the model has no input '${input.name}' (inputs: ${backend.inputNames.join(', ')})`);
      }
      this.#outputNames = backend.outputNames;
      this.#run = async (data, dims) => {
        // A static batch larger than one is filled with the image followed by zeros.
        const full = batch > 1 ? new Float32Array(data.length * batch) : data;
        if (batch > 1) full.set(data);
        return backend.run({ [input.name]: new ort.Tensor('float32', full, [batch, ...dims.slice(1)]) });
      };
      this.#release = owns && backend.release ? () => backend.release!() : undefined;
    } else {
      if (backend.inputs[0]?.name !== input.name) {
        throw layoutError(`the model's first input is '${backend.inputs[0]?.name}', the manifest names '${input.name}'`);
      }
      this.#outputNames = backend.outputs.map((o) => o.name);
      this.#run = async (data, dims) => {
        const full = batch > 1 ? new Float32Array(data.length * batch) : data;
        if (batch > 1) full.set(data);
        return backend.run(full, [batch, ...dims.slice(1)]);
      };
      this.#release = owns && backend.dispose ? () => backend.dispose!() : undefined;
    }
    const expectedOutputs = output.layout === 'yolov5-raw' ? strides.length : 1;
    if (this.#outputNames.length < expectedOutputs) {
      throw layoutError(`${output.layout} needs ${expectedOutputs} output(s), the model has ${this.#outputNames.length}`);
    }
    this.name = model.name;
    this.version = model.version;
    this.names = [...names];
    this.inputSize = size;
    this.#model = model;
    this.#pre = { size, normalisation: input.normalisation, letterbox: input.letterbox, auto: dynamic && input.letterbox.auto };
    this.#defaults = { conf: options.conf, iou: options.iou, maxDet: options.maxDet };
  }

  /** Opens an ONNX file in onnxruntime-node (CPU unless `sessionOptions` say otherwise) as a detector. */
  static async open(
    file: string, model: DetectorModel, options: DetectorOptions & { sessionOptions?: ort.InferenceSession.SessionOptions } = {},
  ): Promise<Detector> {
    const session = await ort.InferenceSession.create(file, options.sessionOptions ?? {});
    try {
      return new Detector(session, model, options);
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  /** Decodes, letterboxes and normalises an image into the model's input tensor (the "pre" step alone). */
  async prepare(image: DetectorImage): Promise<PreparedInput> {
    const rgb = await decodeToRgb(image);
    return letterboxToTensor(rgb, this.#pre);
  }

  /** Detects objects in one image; boxes come back in the image's own pixels. */
  async detect(image: DetectorImage, options: DetectOptions = {}): Promise<DetectResult> {
    checkOptions(options);
    this.#checkOpen();
    const t0 = performance.now();
    const prepared = await this.prepare(image);
    const preMs = performance.now() - t0;
    const result = await this.detectTensor(prepared, options);
    result.timings.preMs = preMs;
    return result;
  }

  /**
   * Runs the model and post-processing on an input made by {@link prepare}; benchmarks call this to
   * time inference without decoding. `timings.preMs` is 0.
   */
  async detectTensor(prepared: PreparedInput, options: DetectOptions = {}): Promise<DetectResult> {
    checkOptions(options);
    this.#checkOpen();
    const t1 = performance.now();
    let outputs: Record<string, TensorLike>;
    try {
      outputs = await this.#run(prepared.data, prepared.dims);
    } catch (e) {
      throw new ServeError('SERVE_INFERENCE', `inference failed: ${(e as Error).message}`, { cause: e });
    }
    const t2 = performance.now();
    const detections = this.#post(outputs, prepared, { ...this.#defaults, ...options });
    const t3 = performance.now();
    return { detections, timings: { preMs: 0, inferMs: t2 - t1, postMs: t3 - t2 }, width: prepared.width, height: prepared.height };
  }

  /** Releases the session (when the detector owns it); later calls fail with SERVE_CLOSED. Safe to call twice. */
  dispose(): Promise<void> {
    this.#disposed ??= this.#release ? this.#release() : Promise.resolve();
    return this.#disposed;
  }

  #checkOpen(): void {
    if (this.#disposed !== undefined) throw new ServeError('SERVE_CLOSED', 'the detector has been disposed');
  }

  /** Decoded rows [A, 5 + nc] of image 0, from either layout. */
  #rows(outputs: Record<string, TensorLike>, inputH: number, inputW: number): Float32Array {
    const { output, strides, anchors, names } = this.#model;
    const nc = names.length;
    const no = nc + 5;
    if (output.layout === 'yolov5-decoded') {
      const name = output.name in outputs ? output.name : this.#outputNames[0];
      const t = outputs[name];
      if (t === undefined) throw layoutError(`the model returned no output '${name}'`);
      const data = asFloat32(t, name);
      const dims = t.dims;
      if (dims.length !== 3 || dims[2] !== no) throw layoutError(`output ${name} has dims [${dims.join(', ')}], expected [N, A, ${no}]`);
      return data.subarray(0, dims[1] * no);
    }
    const levels: YoloHeadLevel[] = strides.map((stride, l) => {
      const name = this.#outputNames[l];
      const t = outputs[name];
      if (t === undefined) throw layoutError(`the model returned no output '${name}' for level ${l}`);
      const na = anchors[l].length / 2;
      const ny = Math.ceil(inputH / stride);
      const nx = Math.ceil(inputW / stride);
      return { data: toNhwc(asFloat32(t, name), t.dims, na, no, ny, nx, name), ny, nx, stride, anchors: anchors[l] };
    });
    return decodeYoloOutputs(levels, 1, nc);
  }

  #post(outputs: Record<string, TensorLike>, prepared: PreparedInput, o: DetectOptions): ServeDetection[] {
    const [, , inputH, inputW] = prepared.dims;
    const rows = this.#rows(outputs, inputH, inputW);
    const dets = nonMaxSuppression(rows, this.names.length, { confThres: o.conf ?? 0.25, iouThres: o.iou ?? 0.45, maxDet: o.maxDet ?? 300 });
    if (dets.length === 0) return [];
    const { ratio, pad } = prepared.geometry;
    const boxes = scaleBoxes(dets.map((d) => d.box), ratio, pad, [prepared.height, prepared.width]);
    return dets.map((d, i) => ({ cls: d.cls, name: this.names[d.cls] ?? String(d.cls), score: d.score, box: boxes[i] }));
  }
}

/**
 * One level's logits of image 0 as NHWC [ny, nx, na·no], the layout core's decoder reads. Accepts the
 * exporter's [N, na, ny, nx, no], NHWC [N, ny, nx, na·no], and the convolution's NCHW [N, na·no, ny, nx].
 */
function toNhwc(data: Float32Array, dims: readonly number[], na: number, no: number, ny: number, nx: number, name: string): Float32Array {
  const c = na * no;
  const cells = ny * nx;
  const out = new Float32Array(cells * c);
  if (dims.length === 5 && dims[1] === na && dims[2] === ny && dims[3] === nx && dims[4] === no) {
    for (let a = 0; a < na; a++) {
      for (let cell = 0; cell < cells; cell++) {
        const src = (a * cells + cell) * no;
        out.set(data.subarray(src, src + no), cell * c + a * no);
      }
    }
    return out;
  }
  if (dims.length === 4 && dims[1] === ny && dims[2] === nx && dims[3] === c) return data.subarray(0, cells * c);
  if (dims.length === 4 && dims[1] === c && dims[2] === ny && dims[3] === nx) {
    for (let ch = 0; ch < c; ch++) for (let cell = 0; cell < cells; cell++) out[cell * c + ch] = data[ch * cells + cell];
    return out;
  }
  throw layoutError(`raw output ${name} has dims [${dims.join(', ')}]; expected [N, ${na}, ${ny}, ${nx}, ${no}], [N, ${ny}, ${nx}, ${c}] or [N, ${c}, ${ny}, ${nx}]`);
}
