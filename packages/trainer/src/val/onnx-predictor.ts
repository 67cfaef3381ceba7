import * as ort from 'onnxruntime-node';
import type { Shard } from '../data/types.js';
import { ExportError } from '../errors.js';
import type { DetectionPredictor } from './validator.js';

/** NHWC (the loader's layout) → NCHW (the ONNX input layout) for images i0..i0+n of a shard. */
export function nhwcToNchw(src: Float32Array, n: number, h: number, w: number): Float32Array {
  const out = new Float32Array(n * 3 * h * w);
  const plane = h * w;
  for (let b = 0; b < n; b++) {
    const s0 = b * plane * 3;
    const d0 = b * plane * 3;
    for (let p = 0; p < plane; p++) {
      out[d0 + p] = src[s0 + p * 3]!;
      out[d0 + plane + p] = src[s0 + p * 3 + 1]!;
      out[d0 + 2 * plane + p] = src[s0 + p * 3 + 2]!;
    }
  }
  return out;
}

/**
 * A validation predictor backed by an ONNX Runtime session on a detector whose `output0` is the
 * ultralytics decoded layout [N, A, 5+nc] (kd-edge exports, ultralytics exports). A static batch
 * dimension is honoured by running chunks of that size, padding the last one.
 */
export class OnnxDetectionPredictor implements DetectionPredictor {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly nc: number,
    private readonly inputName: string,
    private readonly staticBatch: number | undefined,
    private readonly staticHw: [number, number] | undefined,
  ) {}

  /** Opens a model file; `nc` is checked against the output's last dimension. */
  static async open(file: string, nc: number, sessionOptions: ort.InferenceSession.SessionOptions = {}): Promise<OnnxDetectionPredictor> {
    const session = await ort.InferenceSession.create(file, sessionOptions);
    const input = session.inputMetadata[0];
    const output = session.outputMetadata.find((m) => m.name === 'output0') ?? session.outputMetadata[0];
    if (input === undefined || !input.isTensor || output === undefined || !output.isTensor) {
      await session.release();
      throw new ExportError('EXPORT_MODEL_LAYOUT', `${file}: expected one image input and a decoded output0`);
    }
    const no = output.shape[output.shape.length - 1];
    if (output.shape.length !== 3 || (typeof no === 'number' && no !== nc + 5)) {
      await session.release();
      throw new ExportError(
        'EXPORT_MODEL_LAYOUT',
        `${file}: output ${output.name} has shape [${output.shape.join(', ')}]; expected [N, A, ${nc + 5}] (decoded YOLOv5 with nc=${nc})`,
      );
    }
    const [b, , h, w] = input.shape;
    const hw: [number, number] | undefined = typeof h === 'number' && typeof w === 'number' && h > 0 && w > 0 ? [h, w] : undefined;
    return new OnnxDetectionPredictor(session, nc, input.name, typeof b === 'number' && b > 0 ? b : undefined, hw);
  }

  async predict(part: Shard): Promise<{ decoded: Float32Array; preMs: number; inferMs: number }> {
    const { n, height: h, width: w } = part;
    if (this.staticHw !== undefined && (this.staticHw[0] !== h || this.staticHw[1] !== w)) {
      throw new ExportError('EXPORT_MODEL_LAYOUT', `the model takes ${this.staticHw[0]}×${this.staticHw[1]} images but the batch is ${h}×${w}; use the same --imgsz`);
    }
    const t0 = performance.now();
    const nchw = nhwcToNchw(part.images, n, h, w);
    const t1 = performance.now();
    const chunk = this.staticBatch ?? n;
    const parts: Float32Array[] = [];
    let rowsLen = 0;
    for (let i = 0; i < n; i += chunk) {
      const m = Math.min(chunk, n - i);
      const data = new Float32Array(chunk * 3 * h * w);
      data.set(nchw.subarray(i * 3 * h * w, (i + m) * 3 * h * w));
      const out = await this.session.run({ [this.inputName]: new ort.Tensor('float32', data, [chunk, 3, h, w]) });
      const t = out.output0 ?? Object.values(out)[0]!;
      const all = t.data as Float32Array;
      rowsLen = all.length / chunk;
      parts.push(all.slice(0, m * rowsLen));
      for (const v of Object.values(out)) v.dispose();
    }
    const decoded = new Float32Array(n * rowsLen);
    let off = 0;
    for (const p of parts) {
      decoded.set(p, off);
      off += p.length;
    }
    return { decoded, preMs: t1 - t0, inferMs: performance.now() - t1 };
  }

  /** Frees the session. */
  async close(): Promise<void> {
    await this.session.release();
  }
}
