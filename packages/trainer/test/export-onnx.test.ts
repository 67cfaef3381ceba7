import { decodeYoloOutputs, encodeModel, exportOnnx, yoloDescription, classifierDescription, type ExportOpset } from '@kd-edge/core';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../src/tf.js';
import { selectBackend } from '../src/backend/select.js';
import { createYoloModel } from '../src/model/yolo.js';
import { createClassifier } from '../src/model/classifier.js';
import { modelWeights } from '../src/export/model-weights.js';
import { silentLogger } from '../src/util/logger.js';
import type { ClassificationModel, DetectionModel, TrainableModel } from '../src/model/types.js';
import { maxAbs, perturbBatchNorm, pictures, uniform } from './model-fixtures.js';

/** NCHW [N,3,H,W] from NHWC values. */
function toNchw(nhwc: Float32Array, n: number, h: number, w: number): Float32Array {
  const out = new Float32Array(nhwc.length);
  for (let b = 0; b < n; b++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    out[((b * 3 + c) * h + y) * w + x] = nhwc[((b * h + y) * w + x) * 3 + c]!;
  }
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function runOrt(bytes: Uint8Array, input: Float32Array, dims: number[]): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    return await session.run({ images: new ort.Tensor('float32', input, dims) });
  } finally {
    await session.release();
  }
}

/** tfjs eval-mode forward, decoded as ultralytics does (core's decoder is tested against hand values). */
function tfjsDecoded(model: DetectionModel, nhwc: Float32Array, n: number, h: number, w: number): Float32Array {
  const x = tf.tensor4d(nhwc, [n, h, w, 3]);
  const outs = model.forward(x, false);
  const levels = outs.map((t, l) => ({
    data: t.dataSync() as Float32Array, ny: t.shape[1], nx: t.shape[2], stride: model.strides[l]!, anchors: model.anchors[l]!,
  }));
  tf.dispose([x, ...outs]);
  return decodeYoloOutputs(levels, n, model.nc);
}

const OPSETS: ExportOpset[] = [13, 17];

beforeAll(async () => {
  await selectBackend('cpu', silentLogger);
});

describe.each(OPSETS)('ONNX export, opset %i, matches TensorFlow.js in onnxruntime-node', (opset) => {
  const models: TrainableModel[] = [];
  afterAll(() => models.forEach((m) => m.dispose()));

  it.each([
    ['yolov5n', () => yoloDescription('n', 3)],
    ['custom (depth 0.33, width 0.125, 1 class)', () => yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 1)],
  ])('detector %s: decoded output0 on random and real inputs', async (_label, make) => {
    const model = createYoloModel(make(), { seed: 3 });
    models.push(model);
    perturbBatchNorm(model, 11);
    const [n, h, w] = [2, 64, 96];
    const onnx = exportOnnx(model.description, modelWeights(model), { imgsz: [h, w], opset, batch: n });
    expect(onnx.opsetImport).toEqual([{ domain: '', version: opset }]);
    const bytes = encodeModel(onnx);
    for (const nhwc of [uniform(n * h * w * 3, 5), pictures(n, h, w)]) {
      const ref = tfjsDecoded(model, nhwc, n, h, w);
      const out = (await runOrt(bytes, toNchw(nhwc, n, h, w), [n, 3, h, w])).output0!;
      expect(out.dims).toEqual([n, ref.length / n / (model.nc + 5), model.nc + 5]);
      const scale = maxAbs(ref);
      expect(maxAbsDiff(out.data as Float32Array, ref)).toBeLessThanOrEqual(1e-4 * scale);
    }
  });

  it('detector raw heads equal the TensorFlow.js logits, in ultralytics [N, na, ny, nx, no] layout', async () => {
    const model = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 2), { seed: 4 });
    models.push(model);
    perturbBatchNorm(model, 12);
    const [n, h, w] = [1, 64, 64];
    const bytes = encodeModel(exportOnnx(model.description, modelWeights(model), { imgsz: h, opset, raw: true }));
    const nhwc = pictures(n, h, w);
    const x = tf.tensor4d(nhwc, [n, h, w, 3]);
    const refs = model.forward(x, false);
    const outs = await runOrt(bytes, toNchw(nhwc, n, h, w), [n, 3, h, w]);
    const no = model.nc + 5;
    refs.forEach((r, l) => {
      const [, ny, nx] = r.shape;
      const nhwcLogits = r.dataSync() as Float32Array;
      // [N, ny, nx, na·no] → [N, na, ny, nx, no]
      const ref = new Float32Array(nhwcLogits.length);
      for (let a = 0; a < model.na; a++) for (let y = 0; y < ny; y++) for (let xx = 0; xx < nx; xx++) for (let k = 0; k < no; k++) {
        ref[((a * ny + y) * nx + xx) * no + k] = nhwcLogits[(y * nx + xx) * model.na * no + a * no + k]!;
      }
      const got = outs[`output${l}`]!;
      expect(got.dims).toEqual([n, model.na, ny, nx, no]);
      expect(maxAbsDiff(got.data as Float32Array, ref)).toBeLessThanOrEqual(1e-4 * maxAbs(ref));
    });
    tf.dispose([x, ...refs]);
  });

  it('dynamic batch, height and width: one file serves several shapes', async () => {
    const model = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 2), { seed: 5 });
    models.push(model);
    perturbBatchNorm(model, 13);
    const onnx = exportOnnx(model.description, modelWeights(model), { imgsz: 64, opset, dynamic: true });
    expect(onnx.graph!.input[0]!.type!.tensorType!.shape!.dim.map((d) => d.dimParam ?? d.dimValue)).toEqual(['batch', 3, 'height', 'width']);
    const bytes = encodeModel(onnx);
    for (const [n, h, w] of [[1, 64, 64], [3, 96, 32]] as const) {
      const nhwc = uniform(n * h * w * 3, n * 7 + h);
      const ref = tfjsDecoded(model, nhwc, n, h, w);
      const out = (await runOrt(bytes, toNchw(nhwc, n, h, w), [n, 3, h, w])).output0!;
      expect(out.dims[0]).toBe(n);
      expect(maxAbsDiff(out.data as Float32Array, ref)).toBeLessThanOrEqual(1e-4 * maxAbs(ref));
    }
  });

  it('classifier: logits on random and real inputs', async () => {
    const model: ClassificationModel = createClassifier(classifierDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 4), { seed: 6 });
    models.push(model);
    perturbBatchNorm(model, 14);
    const [n, h, w] = [2, 64, 64];
    const onnx = exportOnnx(model.description, modelWeights(model), { imgsz: h, opset, batch: n });
    const bytes = encodeModel(onnx);
    for (const nhwc of [uniform(n * h * w * 3, 9), pictures(n, h, w)]) {
      const x = tf.tensor4d(nhwc, [n, h, w, 3]);
      const logits = model.forward(x, false);
      const ref = logits.dataSync() as Float32Array;
      tf.dispose([x, logits]);
      const out = (await runOrt(bytes, toNchw(nhwc, n, h, w), [n, 3, h, w])).output0!;
      expect(out.dims).toEqual([n, 4]);
      expect(maxAbsDiff(out.data as Float32Array, ref)).toBeLessThanOrEqual(1e-4 * maxAbs(ref));
    }
  });
});

describe('ONNX export metadata', () => {
  it('writes stride and names as ultralytics does, plus the layout kd-edge readers need', () => {
    const desc = { ...yoloDescription('n', 2), names: ["person", "it's"] };
    const model = createYoloModel(desc, { seed: 1 });
    const onnx = exportOnnx(desc, modelWeights(model), { imgsz: 64 });
    model.dispose();
    const meta = Object.fromEntries(onnx.metadataProps.map((e) => [e.key, e.value]));
    expect(meta.stride).toBe('32');
    expect(meta.names).toBe(`{0: 'person', 1: "it's"}`);
    expect(meta.output_layout).toBe('yolov5-decoded');
    expect(JSON.parse(meta.strides!)).toEqual([8, 16, 32]);
    expect(onnx.irVersion).toBe(7);
    // BatchNorm is folded: no BatchNormalization node, every Conv has a bias.
    const ops = onnx.graph!.node.map((n) => n.opType);
    expect(ops).not.toContain('BatchNormalization');
    expect(onnx.graph!.node.filter((n) => n.opType === 'Conv').every((n) => n.input.length === 3)).toBe(true);
  });

  it('refuses sizes that are not multiples of the stride, and unknown opsets', () => {
    const desc = yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 1);
    const model = createYoloModel(desc, { seed: 1 });
    const w = modelWeights(model);
    model.dispose();
    expect(() => exportOnnx(desc, w, { imgsz: 100 })).toThrow(/multiple of the model's stride 32/);
    expect(() => exportOnnx(desc, w, { imgsz: 64, opset: 12 as ExportOpset })).toThrow(/opset: 12/);
  });
});

/** Debian's python3 with python3-onnx (CI installs it); pyenv shims may shadow it as `python3`. */
function pythonWithOnnx(): string | undefined {
  for (const py of ['/usr/bin/python3', 'python3']) {
    try {
      execFileSync(py, ['-c', 'import onnx'], { stdio: 'ignore' });
      return py;
    } catch {
      // try the next one
    }
  }
  return undefined;
}
const PY = pythonWithOnnx();

describe('ONNX export passes the reference checker', () => {
  it.skipIf(PY === undefined).each(OPSETS)('python3-onnx check_model(full_check) accepts a yolov5n export, opset %i', (opset) => {
    const desc = yoloDescription('n', 3);
    const model = createYoloModel(desc, { seed: 2 });
    const onnx = exportOnnx(desc, modelWeights(model), { imgsz: 64, opset, dynamic: true });
    model.dispose();
    const dir = mkdtempSync(join(tmpdir(), 'kd-export-'));
    try {
      const file = join(dir, 'm.onnx');
      writeFileSync(file, encodeModel(onnx));
      const out = execFileSync(PY!, ['-c', [
        'import onnx, sys, json',
        'm = onnx.load(sys.argv[1])',
        'onnx.checker.check_model(m, full_check=True)',
        'print(json.dumps({"opset": m.opset_import[0].version, "ir": m.ir_version, "out": [o.name for o in m.graph.output],',
        '  "meta": {p.key: p.value for p in m.metadata_props}}))',
      ].join('\n'), file], { encoding: 'utf8' });
      const r = JSON.parse(out) as { opset: number; ir: number; out: string[]; meta: Record<string, string> };
      expect(r).toMatchObject({ opset, ir: opset === 13 ? 7 : 8, out: ['output0'] });
      expect(r.meta.stride).toBe('32');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
