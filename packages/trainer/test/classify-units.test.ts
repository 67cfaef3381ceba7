import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { smoothedCrossEntropy, smoothedCrossEntropyValues } from '../src/classify/loss.js';
import { accuracyOf, trueClassRanks } from '../src/classify/metrics.js';
import { IMAGENET_NORMALISATION, normalisationMetadata, parseNormalisation } from '../src/classify/normalisation.js';
import { classifyResultsColumns } from '../src/classify/run-files.js';
import { classifierScale } from '../src/classify/student.js';
import { classifyImgSize } from '../src/classify/train.js';
import { formatClassifyCompare } from '../src/classify/distill.js';
import { formatClassifyTable, type ClassifyValResult } from '../src/classify/validate.js';
import { Adam } from '../src/train/adam.js';
import * as tf from '../src/tf.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// By hand: z = [2, 0, −1], label 0, ε = 0.1: lse = ln(e² + 1 + e⁻¹) = 2.169846; targets [0.9333, 0.0333, 0.0333];
// loss = 0.9333·0.169846 + 0.0333·2.169846 + 0.0333·3.169846 = 0.336513. z = [0, 0, 0] gives ln 3 whatever ε.
describe('label-smoothed cross-entropy', () => {
  it('matches the value worked by hand, in TensorFlow.js and in plain float64', () => {
    const logits = tf.tensor2d([[2, 0, -1], [0, 0, 0]]);
    const loss = smoothedCrossEntropy(logits, Int32Array.from([0, 2]), 0.1);
    expect(loss.dataSync()[0]).toBeCloseTo((0.3365126862229523 + Math.log(3)) / 2, 5);
    const plain = smoothedCrossEntropy(logits, Int32Array.from([0, 2]), 0);
    expect(plain.dataSync()[0]).toBeCloseTo((0.16984601955628564 + Math.log(3)) / 2, 5);
    tf.dispose([logits, loss, plain]);
    const values = smoothedCrossEntropyValues([2, 0, -1, 0, 0, 0], [0, 2], 3, 0.1);
    expect(values[0]).toBeCloseTo(0.3365126862229523, 12);
    expect(values[1]).toBeCloseTo(Math.log(3), 12);
    expect(() => smoothedCrossEntropyValues([1, 2], [0], 3)).toThrow(RangeError);
  });
});

describe('top-k accuracy', () => {
  it('ranks the true class, ties broken by class index, and counts top-1 and top-5 per class', () => {
    const logits = [
      5, 4, 3, 2, 1, 0, // label 0: rank 0 → top-1 and top-5
      5, 4, 3, 2, 1, 0, // label 1: rank 1 → top-5 only
      5, 4, 3, 2, 1, 0, // label 5: rank 5 → neither
      1, 1, 0, 0, 0, 0, // label 1: tie with class 0, which sorts first → rank 1
    ];
    const labels = [0, 1, 5, 1];
    expect([...trueClassRanks(logits, labels, 6)]).toEqual([0, 1, 5, 1]);
    const { all, perClass } = accuracyOf(trueClassRanks(logits, labels, 6), labels, 6);
    expect(all).toEqual({ images: 4, top1: 0.25, top5: 0.75 });
    expect(perClass[0]).toEqual({ images: 1, top1: 1, top5: 1 });
    expect(perClass[1]).toEqual({ images: 2, top1: 0, top5: 1 });
    expect(perClass[5]).toEqual({ images: 1, top1: 0, top5: 0 });
    expect(perClass[2]).toEqual({ images: 0, top1: 0, top5: 0 });
    // With 5 classes or fewer every class is in the top 5 (ultralytics counts the same way).
    expect(accuracyOf(trueClassRanks([0, 1, 2], [0], 3), [0], 3).all).toEqual({ images: 1, top1: 0, top5: 1 });
    expect(() => trueClassRanks([0, 1, 2], [3], 3)).toThrow(/labels\[0\]: 3/);
  });

  it('prints ultralytics’ table and the comparison', () => {
    const r: ClassifyValResult = {
      images: 4, top1: 0.25, top5: 0.75, loss: 1, imgsz: 64, speed: { preprocess: 1, inference: 2, postprocess: 0 },
      perClass: [{ images: 3, top1: 1 / 3, top5: 1 }, { images: 1, top1: 0, top5: 0 }],
    };
    const lines = formatClassifyTable(r, ['cat', 'dog']);
    expect(lines[0]).toBe(`${'Class'.padStart(24)}${'Images'.padStart(12)}${'top1_acc'.padStart(12)}${'top5_acc'.padStart(12)}`);
    expect(lines[1]).toBe(`${'all'.padStart(24)}${'4'.padStart(12)}${'0.25'.padStart(12)}${'0.75'.padStart(12)}`);
    expect(lines[2]).toContain('0.333');
    expect(lines[4]).toMatch(/^Speed: 1\.0ms pre-process, 2\.0ms inference, 0\.0ms post-process per image at shape \(1, 3, 64, 64\)$/);
    const cmp = formatClassifyCompare([
      { model: 'teacher', params: 10, top1: 0.9, top5: 1 }, { model: 'student (baseline)', params: 5, top1: 0.6, top5: 1 },
      { model: 'student (distilled)', params: 5, top1: 0.7, top5: 1 },
    ], (0.7 - 0.6) / (0.9 - 0.6));
    expect(cmp.at(-1)).toBe('distillation recovered 33 % of the teacher–student top-1 gap');
  });
});

describe('Adam', () => {
  it('steps as torch.optim.Adam and AdamW do, decaying weights but not biases', () => {
    const w = tf.variable(tf.scalar(1), true, 'model.0.conv.weight');
    const b = tf.variable(tf.scalar(1), true, 'model.0.conv.bias');
    const params = new Map([['model.0.conv.weight', w], ['model.0.conv.bias', b]]);
    // By hand (lr 0.1, β 0.9/0.999): step 1 with g = 0.5 moves by lr·m̂/√v̂ = 0.1; step 2 with g = −0.25 gives 0.873366.
    const adam = new Adam(params, { lr: 0.1 });
    adam.step({ 'model.0.conv.weight': tf.scalar(0.5) });
    expect(w.dataSync()[0]).toBeCloseTo(0.9, 6);
    adam.step({ 'model.0.conv.weight': tf.scalar(-0.25) });
    expect(w.dataSync()[0]).toBeCloseTo(0.8733662987078462, 6);
    expect(b.dataSync()[0]).toBe(1);
    adam.dispose();
    // torch Adam's L2 decay: g + wd·p, on weights only (by hand: 0.9, then 0.854441 with wd 0.1).
    w.assign(tf.scalar(1));
    const l2 = new Adam(params, { lr: 0.1, weightDecay: 0.1 });
    l2.step({ 'model.0.conv.weight': tf.scalar(0.5) });
    l2.step({ 'model.0.conv.weight': tf.scalar(-0.25) });
    expect(w.dataSync()[0]).toBeCloseTo(0.8544413674617625, 6);
    l2.dispose();
    // AdamW: p·(1 − lr·wd) first, on weights only: 1·0.99 − 0.1 = 0.89 for the weight, 0.9 for the bias.
    w.assign(tf.scalar(1));
    const adamw = new Adam(params, { lr: 0.1, weightDecay: 0.1, kind: 'adamw' });
    adamw.step({ 'model.0.conv.weight': tf.scalar(0.5), 'model.0.conv.bias': tf.scalar(0.5) });
    expect(w.dataSync()[0]).toBeCloseTo(0.89, 6);
    expect(b.dataSync()[0]).toBeCloseTo(0.9, 6);
    adamw.dispose();
    tf.dispose([w, b]);
    expect(() => new Adam(params, { lr: 0.1, beta1: 1 })).toThrow(/beta1/);
  });
});

describe('classify settings', () => {
  it('names models, rounds image sizes to the stride, and lays results.csv out as ultralytics', () => {
    expect(classifierScale('yolov5s-cls')).toBe('s');
    expect(classifierScale('yolov5m')).toBe('m');
    expect(() => classifierScale('resnet50')).toThrow(/invalid model: "resnet50" \(allowed: yolov5n-cls, yolov5s-cls/);
    expect(classifyImgSize(32, 32)).toBe(32);
    expect(classifyImgSize(100, 32)).toBe(128);
    expect(classifyResultsColumns('val', false)).toEqual(['epoch', 'train/loss', 'val/loss', 'metrics/accuracy_top1', 'metrics/accuracy_top5', 'lr/0']);
    expect(classifyResultsColumns('test', true).slice(2)).toEqual(['test/loss', 'metrics/accuracy_top1', 'metrics/accuracy_top5', 'lr/0', 'train/ce_loss', 'train/kd_loss']);
    const meta = normalisationMetadata(IMAGENET_NORMALISATION);
    expect(parseNormalisation(meta.normalisation)).toEqual({ scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    expect(() => parseNormalisation('{"scale":1,"mean":[0,0],"std":[1,1,1]}')).toThrow(/normalisation: expected/);
  });
});
