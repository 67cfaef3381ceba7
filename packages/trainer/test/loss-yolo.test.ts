import * as tf from '../src/tf.js';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildTargets } from '../src/loss/build-targets.js';
import { ciou } from '../src/loss/ciou.js';
import { bceWithLogits, scaleLossHyp, yoloLoss } from '../src/loss/yolo-loss.js';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';

beforeAll(async () => { await tf.setBackend('cpu'); });

const model = { nc: 2, na: 3, strides: [8, 16, 32], anchors: [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]] };
const logit = (p: number) => Math.log(p / (1 - p));

/** Logits that predict every matched target exactly, confident objectness there and none elsewhere. */
function perfectPreds(targets: Float32Array, nt: number, size: number): tf.Tensor4D[] {
  const no = 5 + model.nc;
  const levels = model.strides.map((s, i) => ({ ny: size / s, nx: size / s, stride: s, anchors: model.anchors[i] }));
  const matches = buildTargets(targets, nt, levels, 4.0);
  return levels.map((lv, i) => {
    const data = new Float32Array(1 * lv.ny * lv.nx * 3 * no);
    for (let r = 0; r < data.length / no; r++) data[r * no + 4] = -12;
    const m = matches[i];
    for (let k = 0; k < m.n; k++) {
      const r = m.rows[k] * no;
      data[r] = logit((m.tbox[k * 4] + 0.5) / 2);
      data[r + 1] = logit((m.tbox[k * 4 + 1] + 0.5) / 2);
      data[r + 2] = logit(Math.sqrt(m.tbox[k * 4 + 2] / m.anchors[k * 2]) / 2);
      data[r + 3] = logit(Math.sqrt(m.tbox[k * 4 + 3] / m.anchors[k * 2 + 1]) / 2);
      data[r + 4] = 12;
      for (let c = 0; c < model.nc; c++) data[r + 5 + c] = c === m.tcls[k] ? 12 : -12;
    }
    return tf.tensor4d(data, [1, lv.ny, lv.nx, 3 * no]);
  });
}

describe('YOLOv5 loss', () => {
  it('CIoU of equal boxes is finite (float32 can round the IoU past 1, which made alpha 0/0 = NaN)', () => {
    let seed = 9;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
    const a = tf.tensor2d(Float32Array.from({ length: 2000 * 4 }, (_, k) => (k % 4 < 2 ? rand() * 2 - 0.5 : 0.1 + rand() * 5)), [2000, 4]);
    expect(ciou(a, a).dataSync().every((x) => Number.isFinite(x) && Math.abs(1 - x) < 1e-5)).toBe(true);
    expect(tf.grad((x: tf.Tensor) => ciou(x as tf.Tensor2D, a).sum())(a).dataSync().every(Number.isFinite)).toBe(true);
  });

  const targets = Float32Array.from([0, 1, 0.3, 0.55, 0.1, 0.2]);
  const hyp = scaleLossHyp(HYP_SCRATCH_LOW, 3, 2, 128);

  it('scales gains like ultralytics train.py', () => {
    expect(hyp.box).toBeCloseTo(0.05, 10);
    expect(hyp.cls).toBeCloseTo(0.5 * 2 / 80, 10);
    expect(hyp.obj).toBeCloseTo((128 / 640) ** 2, 10);
  });

  it('is near zero for a prediction that matches every target', () => {
    const preds = perfectPreds(targets, 1, 128);
    const l = yoloLoss(preds, targets, 1, model, hyp);
    expect(l.box.dataSync()[0]).toBeLessThan(1e-4);
    expect(l.cls.dataSync()[0]).toBeLessThan(1e-4);
    expect(l.obj.dataSync()[0]).toBeLessThan(1e-4);
  });

  it('grows when the box is off, the class is wrong or objectness is missing', () => {
    const good = yoloLoss(perfectPreds(targets, 1, 128), targets, 1, model, hyp);
    const wrongCls = Float32Array.from([0, 0, 0.3, 0.55, 0.1, 0.2]);
    const bad = yoloLoss(perfectPreds(targets, 1, 128), wrongCls, 1, model, hyp);
    expect(bad.cls.dataSync()[0]).toBeGreaterThan(good.cls.dataSync()[0] + 0.01);
    const moved = Float32Array.from([0, 1, 0.35, 0.5, 0.1, 0.2]);
    const off = yoloLoss(perfectPreds(targets, 1, 128), moved, 1, model, hyp);
    expect(off.box.dataSync()[0]).toBeGreaterThan(0.005);
    const empty = yoloLoss(perfectPreds(new Float32Array(0), 0, 128), targets, 1, model, hyp);
    expect(empty.obj.dataSync()[0]).toBeGreaterThan(good.obj.dataSync()[0] + 0.005);
  });

  it('total is (box + obj + cls) times the batch size, and has gradients', () => {
    const preds = perfectPreds(Float32Array.from([0, 0, 0.5, 0.5, 0.3, 0.3]), 1, 64).map((p) => tf.variable(p.add(tf.randomNormal(p.shape, 0, 0.5, 'float32', 1))) as unknown as tf.Tensor4D);
    const l = yoloLoss(preds, targets, 1, model, hyp);
    const sum = l.box.dataSync()[0] + l.obj.dataSync()[0] + l.cls.dataSync()[0];
    expect(l.total.dataSync()[0]).toBeCloseTo(sum, 5);
    const { grads } = tf.variableGrads(() => yoloLoss(preds, targets, 1, model, hyp).total, preds as unknown as tf.Variable[]);
    for (const g of Object.values(grads)) expect(tf.abs(g).sum().dataSync()[0]).toBeGreaterThan(0);
  });

  it('bceWithLogits equals -(y log σ(x) + (1-y) log(1-σ(x)))', () => {
    const x = [-3, -0.5, 0, 2, 20];
    const y = [0, 1, 0.3, 1, 0];
    const ref = x.reduce((s, xi, i) => {
      const p = 1 / (1 + Math.exp(-xi));
      return s - (y[i] * Math.log(p) + (1 - y[i]) * Math.log(1 - p + 1e-30));
    }, 0) / x.length;
    expect(bceWithLogits(tf.tensor1d(x), tf.tensor1d(y)).dataSync()[0]).toBeCloseTo(ref, 3);
  });

  it('CIoU is 1 for identical boxes, IoU minus penalties otherwise', () => {
    const a = tf.tensor2d([[5, 5, 2, 2]]);
    expect(ciou(a, a).dataSync()[0]).toBeCloseTo(1, 5);
    // Same shape shifted by 1 in x: IoU = 1/3, rho² = 1, c² = 3² + 2² = 13, v = 0.
    const b = tf.tensor2d([[6, 5, 2, 2]]);
    expect(ciou(a, b).dataSync()[0]).toBeCloseTo(1 / 3 - 1 / 13, 4);
  });
});

describe('objectness balance per level (ultralytics utils/loss.py)', () => {
  it('is 4, 1, 0.4 for P3–P5 and 4, 1, 0.25, 0.06, 0.02 level by level for other heads', async () => {
    const { objectnessBalance } = await import('../src/loss/objectness-balance.js');
    expect(objectnessBalance(3)).toEqual([4.0, 1.0, 0.4]);
    expect(objectnessBalance(4)).toEqual([4.0, 1.0, 0.25, 0.06]);
    expect(objectnessBalance(2)).toEqual([4.0, 1.0]);
    expect(objectnessBalance(5)).toEqual([4.0, 1.0, 0.25, 0.06, 0.02]);
  });
});
