import * as tf from '../src/tf.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { silentLogger } from '../src/util/logger.js';
import { yoloKdLoss, type TeacherLevel, type YoloKdOptions } from '../src/distill/losses/yolo-kd.js';
import { seededRandom } from '@kd-edge/core';
import { ciou, ciouDistance } from '../src/loss/ciou.js';

beforeAll(async () => { await selectBackend('cpu', silentLogger); });

const sig = (x: number) => 1 / (1 + Math.exp(-x));
/** Float64 KL(Bernoulli(σ(t)) ‖ Bernoulli(σ(s))). */
const bkl = (t: number, s: number) => {
  const q = sig(t);
  const p = sig(s);
  return q * Math.log(q / p) + (1 - q) * Math.log((1 - q) / (1 - p));
};
const value = (x: tf.Tensor) => x.dataSync()[0];


const UNIT = { obj: 1, cls: 1, box: 1 };

/** One level, one anchor whose size is one grid cell (so decoded wh is (2σ)² cells), nx cells in a row. */
function oneLevel(nc: number, cells: number[][]): { teacher: TeacherLevel[]; opts: YoloKdOptions; no: number; nx: number } {
  const no = 5 + nc;
  const data = Float32Array.from(cells.flat());
  expect(data.length).toBe(cells.length * no);
  return { no, nx: cells.length, teacher: [{ data, ny: 1, nx: cells.length }], opts: { anchors: [[8, 8]], strides: [8], weights: UNIT } };
}
const asStudent = (rows: number[][]) => [tf.tensor4d(Float32Array.from(rows.flat()), [1, 1, rows.length, rows[0].length])];

/** Three levels (grids 4, 2, 1 at 32 px), three anchors each, nc classes, random logits. */
function threeLevels(nc: number, seed: number, scale = 2) {
  const rand = seededRandom(seed);
  const no = 5 + nc;
  const grids = [4, 2, 1];
  const teacher: TeacherLevel[] = grids.map((g) => ({
    ny: g, nx: g, data: Float32Array.from({ length: 2 * g * g * 3 * no }, () => (rand() * 2 - 1) * scale),
  }));
  const opts: YoloKdOptions = {
    anchors: [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
    strides: [8, 16, 32],
  };
  const random = () => grids.map((g) => tf.tensor4d(Float32Array.from({ length: 2 * g * g * 3 * no }, () => (rand() * 2 - 1) * scale), [2, g, g, 3 * no]));
  return { teacher, opts, random, same: () => teacher.map((t) => tf.tensor4d(t.data, [2, t.ny, t.nx, 3 * no])) };
}

describe('yoloKdLoss', () => {
  it('is zero when the student logits equal the teacher logits', () => {
    const { teacher, opts, same } = threeLevels(3, 1);
    for (const clsMode of ['softmax', 'sigmoid'] as const) {
      const ciou = yoloKdLoss(same(), teacher, { ...opts, clsMode });
      expect(value(ciou.obj)).toBe(0);
      expect(value(ciou.cls)).toBeCloseTo(0, 7);
      expect(Math.abs(value(ciou.box))).toBeLessThan(1e-6); // CIoU's eps leaves a float32 hair
      const l2 = yoloKdLoss(same(), teacher, { ...opts, clsMode, boxMode: 'l2' });
      expect(value(l2.total)).toBeCloseTo(0, 7);
    }
    // A student that starts as its teacher: equal boxes must not give NaN gradients.
    const g = tf.grads((...ls: tf.Tensor[]) => yoloKdLoss(ls as tf.Tensor4D[], teacher, opts).total)(same());
    for (const gi of g) expect(gi.dataSync().every(Number.isFinite)).toBe(true);
  });

  it('computes 1 − CIoU as the YOLOv5 box loss does, without its NaN for equal boxes', () => {
    const rand = seededRandom(9);
    const boxes = (n: number) => tf.tensor2d(Float32Array.from({ length: n * 4 }, (_, k) => (k % 4 < 2 ? rand() * 2 - 0.5 : 0.1 + rand() * 5)), [n, 4]);
    const a = boxes(200);
    const b = boxes(200);
    const mine = ciouDistance(a, b).dataSync();
    const shared = ciou(a, b).dataSync();
    mine.forEach((m, i) => expect(m).toBeCloseTo(1 - shared[i], 5));
    expect(ciouDistance(a, a).dataSync().every((v) => Number.isFinite(v) && Math.abs(v) < 1e-5)).toBe(true);
  });

  it('matches a hand-computed binary KL·T² for one cell', () => {
    // Teacher obj logit 1, student −1, T = 2: KL(σ(0.5) ‖ σ(−0.5))·4 = 0.5·(σ(0.5) − σ(−0.5))·4.
    const row = [0, 0, 0, 0, 1, 0.3, -0.2];
    const { teacher, opts } = oneLevel(2, [row]);
    const s = [...row];
    s[4] = -1;
    const l = yoloKdLoss(asStudent([s]), teacher, { ...opts, temperature: 2 });
    // A one-level head weighs its objectness 4 (ultralytics' balance [4, 1, 0.25, 0.06, 0.02] beyond P3–P5).
    expect(value(l.obj)).toBeCloseTo(0.4898373 * 4, 5);
    expect(value(l.obj)).toBeCloseTo(bkl(0.5, -0.5) * 4 * 4, 5);
    expect(value(l.cls)).toBe(0);
    expect(value(l.total)).toBeCloseTo(value(l.obj) + value(l.box), 6); // batch 1
  });

  it('averages objectness over each level\'s cells with the [4, 1, 0.4] balance, then applies gains and batch size', () => {
    const { teacher, opts, same } = threeLevels(2, 2);
    const at = (level: number) => {
      const s = same();
      const data = Float32Array.from(teacher[level].data);
      const before = data[4];
      data[4] = before + 3; // first cell, first anchor
      s[level] = tf.tensor4d(data, s[level].shape);
      const l = yoloKdLoss(s, teacher, { ...opts, temperature: 1, weights: { obj: 0.5, cls: 1, box: 1 } });
      return { l, kl: bkl(before, before + 3) };
    };
    const cells = [2 * 16 * 3, 2 * 4 * 3, 2 * 1 * 3];
    [4.0, 1.0, 0.4].forEach((balance, i) => {
      const { l, kl } = at(i);
      expect(value(l.obj)).toBeCloseTo(kl * balance / cells[i] * 0.5, 6);
      expect(value(l.total)).toBeCloseTo((value(l.obj) + value(l.cls) + value(l.box)) * 2, 5);
    });
  });

  it('weights classes by teacher objectness: a cell with teacher obj logit −20 adds ~0', () => {
    // Cell A: teacher obj 3, cell B: teacher obj −20; classes differ in only one cell at a time.
    const tA = [0, 0, 0, 0, 3, 1, 0, -1];
    const tB = [0, 0, 0, 0, -20, 1, 0, -1];
    const { teacher, opts } = oneLevel(3, [tA, tB]);
    const off = (r: number[]) => [...r.slice(0, 5), 0, 0, 0];
    const onlyB = yoloKdLoss(asStudent([tA, off(tB)]), teacher, { ...opts, temperature: 2 });
    expect(value(onlyB.cls)).toBeLessThan(1e-8);
    const onlyA = yoloKdLoss(asStudent([off(tA), tB]), teacher, { ...opts, temperature: 2 });
    // σ(3)·mean_c KL_c·T², divided by max(Σ σ(t_obj), 1) = 1.
    expect(value(onlyA.cls)).toBeCloseTo(0.07696764, 6);
    const ref = (bkl(0.5, 0) + bkl(0, 0) + bkl(-0.5, 0)) / 3 * 4 * sig(3);
    expect(value(onlyA.cls)).toBeCloseTo(ref, 6);
  });

  it('softmax mode ignores a shift of all class logits, sigmoid mode does not', () => {
    const t = [0, 0, 0, 0, 3, 1, 0, -1];
    const { teacher, opts } = oneLevel(3, [t]);
    const shifted = asStudent([[...t.slice(0, 5), 3, 2, 1]]);
    expect(value(yoloKdLoss(shifted, teacher, { ...opts, clsMode: 'softmax', temperature: 2 }).cls)).toBeCloseTo(0, 6);
    expect(value(yoloKdLoss(shifted, teacher, { ...opts, clsMode: 'sigmoid', temperature: 2 }).cls)).toBeGreaterThan(0.1);
    // Categorical KL(softmax([1,0,−1]/2) ‖ uniform)·T²·σ(3), from a float64 computation.
    const flat = asStudent([[...t.slice(0, 5), 0, 0, 0]]);
    expect(value(yoloKdLoss(flat, teacher, { ...opts, clsMode: 'softmax', temperature: 2 }).cls)).toBeCloseTo(0.2988071, 6);
  });

  it('skips classes when nc = 1, as the YOLOv5 loss does', () => {
    const { teacher, opts } = oneLevel(1, [[0, 0, 0, 0, 2, 3]]);
    expect(value(yoloKdLoss(asStudent([[0, 0, 0, 0, 2, -3]]), teacher, opts).cls)).toBe(0);
  });

  it('pulls boxes toward the teacher decoded box: 0 when equal, hand values when moved', () => {
    // Teacher box logits 0: pxy = 0.5, pwh = 1 cell. Student x logit ln 3: σ = 0.75, pxy = 1.0.
    const t = [0, 0, 0, 0, 0, 1, -1];
    const { teacher, opts } = oneLevel(2, [t]);
    const moved = asStudent([[Math.log(3), 0, 0, 0, 0, 1, -1]]);
    expect(value(yoloKdLoss(asStudent([t]), teacher, { ...opts, boxMode: 'l2' }).box)).toBe(0);
    // L2: 0.5² / 4 coordinates, × σ(0) = 0.5, ÷ max(0.5, 1).
    expect(value(yoloKdLoss(moved, teacher, { ...opts, boxMode: 'l2' }).box)).toBeCloseTo(0.03125, 6);
    // CIoU of two unit boxes 0.5 apart: IoU 1/3, ρ²/c² = 0.25/3.25, v = 0; × 0.5.
    expect(value(yoloKdLoss(moved, teacher, opts).box)).toBeCloseTo((1 - (1 / 3 - 0.25 / 3.25)) * 0.5, 5);
    const wider = asStudent([[0, 0, 1, 0, 0, 1, -1]]);
    expect(value(yoloKdLoss(wider, teacher, opts).box)).toBeGreaterThan(0.01);
    expect(value(yoloKdLoss(wider, teacher, { ...opts, boxMode: 'l2' }).box)).toBeGreaterThan(0.01);
  });

  it('lets gradient descent bring one student box onto the teacher box', () => {
    const t = [0.3, -0.2, 0.5, -0.4, 2, 1, -1];
    const { teacher, opts } = oneLevel(2, [t]);
    for (const boxMode of ['ciou', 'l2'] as const) {
      const v = tf.variable(asStudent([[-1, 1, -1, 1, 2, 1, -1]])[0]);
      const box = () => yoloKdLoss([v], teacher, { ...opts, boxMode, weights: { obj: 0, cls: 0, box: 1 } }).box;
      const start = value(box());
      // IoU is not smooth where the boxes meet, so its gradient does not vanish there: a decaying step.
      for (let step = 0; step < 150; step++) {
        const { grads } = tf.variableGrads(() => box(), [v]);
        v.assign(v.sub(grads[v.name].mul(3 * 0.97 ** step)));
      }
      expect(value(box())).toBeLessThan(start * 0.01);
      const got = v.dataSync();
      for (let k = 0; k < 4; k++) expect(got[k]).toBeCloseTo(t[k], 1);
      v.dispose();
    }
  });

  it('has finite gradients, even for saturated logits', () => {
    const { teacher, opts, random } = threeLevels(3, 3, 30);
    for (const clsMode of ['softmax', 'sigmoid'] as const) {
      for (const boxMode of ['ciou', 'l2'] as const) {
        const xs = random();
        const g = tf.grads((...ls: tf.Tensor[]) => yoloKdLoss(ls as tf.Tensor4D[], teacher, { ...opts, clsMode, boxMode }).total)(xs);
        for (const gi of g) {
          const d = gi.dataSync();
          expect(d.every(Number.isFinite)).toBe(true);
        }
        expect(g.some((gi) => gi.abs().max().dataSync()[0] > 0)).toBe(true);
      }
    }
  });

  it('lets a few SGD steps move a random student toward a fixed teacher', () => {
    const { teacher, opts, random } = threeLevels(3, 4);
    for (const clsMode of ['softmax', 'sigmoid'] as const) {
      const vars = random().map((t) => tf.variable(t));
      const o = { ...opts, clsMode, temperature: 2, weights: UNIT };
      const loss = () => yoloKdLoss(vars, teacher, o);
      const first = loss();
      const start = { obj: value(first.obj), cls: value(first.cls), box: value(first.box) };
      for (let step = 0; step < 30; step++) {
        const { grads } = tf.variableGrads(() => loss().total, vars);
        vars.forEach((v) => v.assign(v.sub(grads[v.name].mul(5))));
        tf.dispose(grads);
      }
      const end = loss();
      // Every term is a mean over dozens of cells, so each cell moves slowly; obj and cls still
      // fall far, and the box term (the least convex) clearly.
      expect(value(end.obj)).toBeLessThan(start.obj * 0.05);
      expect(value(end.cls)).toBeLessThan(start.cls * 0.25);
      expect(value(end.box)).toBeLessThan(start.box * 0.9);
      tf.dispose(vars);
    }
  });

  it('leaves no tensors behind but its results', () => {
    const { teacher, opts, same } = threeLevels(3, 6);
    const xs = same();
    const before = tf.memory().numTensors;
    const l = yoloKdLoss(xs, teacher, { ...opts, clsMode: 'softmax' });
    expect(tf.memory().numTensors).toBe(before + 4);
    tf.dispose([l.total, l.obj, l.cls, l.box]);
  });

  it('checks shapes against the teacher and the geometry', () => {
    const { teacher, opts, same } = threeLevels(2, 5);
    expect(() => yoloKdLoss(same().slice(0, 2), teacher, opts)).toThrow(/teacher: expected 2 levels/);
    const short = teacher.map((t, i) => (i === 1 ? { ...t, data: t.data.subarray(1) } : t));
    expect(() => yoloKdLoss(same(), short, opts)).toThrow(/teacher\[1\]/);
    expect(() => yoloKdLoss(same(), teacher, { ...opts, clsMode: 'softmx' as 'softmax' })).toThrow(/clsMode/);
    expect(() => yoloKdLoss(same(), teacher, { ...opts, strides: [8, 16] })).toThrow(/strides/);
  });
});
