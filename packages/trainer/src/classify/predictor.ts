import { extname } from 'node:path';
import { inspectModel, readOnnxFile } from '@kd-edge/core';
import * as ort from 'onnxruntime-node';
import { backendForDevice } from '../backend/device.js';
import { selectBackend, type BackendName } from '../backend/select.js';
import { WeightsError } from '../errors.js';
import { onnxModelInfo } from '../export/model-info.js';
import type { ClassificationModel } from '../model/types.js';
import { loadModel } from '../model/weights-io.js';
import * as tf from '../tf.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { nhwcToNchw } from '../val/onnx-predictor.js';
import { IMAGENET_NORMALISATION, parseNormalisation, type Normalisation } from './normalisation.js';

/** Something that turns a batch of normalised NHWC images into class logits [n, nc]. */
export interface ClassifierPredictor {
  readonly kind: 'tfjs' | 'onnx';
  readonly source: string;
  readonly nc: number;
  readonly names: string[];
  /** The input size a static ONNX model takes [h, w]; absent when any size goes. */
  readonly imgsz?: [number, number];
  /** What the model expects its input to be normalised with. */
  readonly normalisation: Normalisation;
  /** Parameter count (trainable for TensorFlow.js, float initialisers for ONNX). */
  readonly paramCount: number;
  predict(images: Float32Array, n: number, height: number, width: number): Promise<Float32Array>;
  close(): Promise<void>;
}

/** A TensorFlow.js classifier in eval mode. `close` disposes the model only when `owned`. */
export class TfjsClassifier implements ClassifierPredictor {
  readonly kind = 'tfjs' as const;
  readonly names: string[];

  constructor(
    readonly model: ClassificationModel,
    readonly source: string,
    readonly normalisation: Normalisation = { ...IMAGENET_NORMALISATION },
    private readonly owned = false,
  ) {
    this.names = model.description.names ?? Array.from({ length: model.nc }, (_, i) => `class${i}`);
  }

  get nc(): number {
    return this.model.nc;
  }

  get paramCount(): number {
    return this.model.paramCount();
  }

  async predict(images: Float32Array, n: number, height: number, width: number): Promise<Float32Array> {
    const logits = tf.tidy(() => this.model.forward(tf.tensor4d(images, [n, height, width, 3]), false));
    try {
      return await logits.data<'float32'>();
    } finally {
      logits.dispose();
    }
  }

  async close(): Promise<void> {
    if (this.owned) this.model.dispose();
  }
}

/**
 * An ONNX classifier (`[N, 3, H, W]` in, logits `[N, nc]` out: kd-edge and ultralytics -cls exports)
 * run by ONNX Runtime as it is. A static batch is run in chunks of it, the last one zero-padded.
 */
export class OnnxClassifier implements ClassifierPredictor {
  readonly kind = 'onnx' as const;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly source: string,
    private readonly inputName: string,
    private readonly outputName: string,
    readonly names: string[],
    readonly normalisation: Normalisation,
    readonly paramCount: number,
    readonly imgsz: [number, number] | undefined,
    private readonly batch: number | undefined,
  ) {}

  get nc(): number {
    return this.names.length;
  }

  /** Opens `file`; a detector is a WeightsError naming it. `threads` sets ONNX Runtime's intra-op threads (0: its default). */
  static async open(file: string, opts: { threads?: number } = {}): Promise<OnnxClassifier> {
    const model = await readOnnxFile(file);
    const info = onnxModelInfo(model, file);
    if (info.task !== 'classify') {
      throw new WeightsError(`${file} is a detector (output ${info.output.name} [${info.output.shape?.join(', ') ?? '?'}]); classify val needs a classifier with logits [N, nc]: use kd-trainer val for detectors`);
    }
    const threads = opts.threads ?? 0;
    const session = await ort.InferenceSession.create(file, { logSeverityLevel: 3, ...(threads > 0 ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}) });
    return new OnnxClassifier(
      session, file, info.input.name, info.output.name, info.names, info.normalisation, inspectModel(model).floatParameterCount, info.imgsz, info.batch,
    );
  }

  async predict(images: Float32Array, n: number, height: number, width: number): Promise<Float32Array> {
    if (this.imgsz !== undefined && (this.imgsz[0] !== height || this.imgsz[1] !== width)) {
      throw new WeightsError(`${this.source} takes ${this.imgsz[0]}×${this.imgsz[1]} images but the batch is ${height}×${width}; use --imgsz ${this.imgsz[0]}`);
    }
    const nchw = nhwcToNchw(images, n, height, width);
    const chunk = this.batch ?? n;
    const per = 3 * height * width;
    const out = new Float32Array(n * this.nc);
    for (let i = 0; i < n; i += chunk) {
      const m = Math.min(chunk, n - i);
      let input = nchw.subarray(i * per, (i + m) * per);
      if (m < chunk) {
        const padded = new Float32Array(chunk * per);
        padded.set(input);
        input = padded;
      }
      const r = await this.session.run({ [this.inputName]: new ort.Tensor('float32', input, [chunk, 3, height, width]) });
      try {
        const t = r[this.outputName] ?? Object.values(r)[0]!;
        if (t.dims.length !== 2 || t.dims[1] !== this.nc) throw new WeightsError(`${this.source}: output is [${t.dims.join(', ')}], expected [${chunk}, ${this.nc}]`);
        out.set((t.data as Float32Array).subarray(0, m * this.nc), i * this.nc);
      } finally {
        for (const v of Object.values(r)) v.dispose();
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** The normalisation a .kdw classifier records in its meta (ImageNet when it records none). */
export function kdwNormalisation(meta: Record<string, unknown>): Normalisation {
  return meta.normalisation === undefined ? { ...IMAGENET_NORMALISATION } : parseNormalisation(meta.normalisation);
}

/** Options of {@link openClassifier}. */
export interface OpenClassifierOptions {
  backend?: BackendName;
  device?: string;
  /** ONNX Runtime intra-op threads (0: its default). */
  threads?: number;
  logger?: Logger;
}

/**
 * Opens classifier weights for validation: a `.kdw` (TensorFlow.js on the selected backend) or an ONNX
 * export (ONNX Runtime, as it is). A detector is a WeightsError naming the file.
 */
export async function openClassifier(file: string, opts: OpenClassifierOptions = {}): Promise<ClassifierPredictor> {
  const ext = extname(file).toLowerCase();
  if (ext === '.onnx') return OnnxClassifier.open(file, opts);
  if (ext !== '.kdw') throw new WeightsError(`${file}: classifier weights must be .kdw (kd-trainer) or .onnx, not '${ext || '(none)'}'`);
  await selectBackend(backendForDevice(opts.device ?? '', opts.backend ?? 'auto'), opts.logger ?? silentLogger);
  const { model, meta } = await loadModel(file);
  if (model.kind !== 'classify') {
    model.dispose();
    throw new WeightsError(`${file} is a ${model.description.type === 'yolov5' ? 'detector' : model.description.type} (${model.description.type}), not a classifier: use kd-trainer val for detectors`);
  }
  return new TfjsClassifier(model, file, kdwNormalisation(meta), true);
}
