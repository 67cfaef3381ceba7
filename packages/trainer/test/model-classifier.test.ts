import * as tf from '../src/tf.js';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureTrainingGradients } from '../src/backend/register-gradients.js';
import { CLASSIFY_HIDDEN, classifierDescription } from '@kd-edge/core';
import { createClassifier } from '../src/model/classifier.js';
import { countParams } from '@kd-edge/core';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await ensureTrainingGradients();
});

describe('classifier', () => {
  it('builds YOLOv5n-cls layers 0–8 plus a Classify head with ultralytics names', () => {
    const clf = createClassifier(classifierDescription('n', 10));
    expect(clf.kind).toBe('classify');
    expect(clf.paramCount()).toBe(countParams(clf.description));
    const names = [...clf.params.keys()];
    expect(names.filter((n) => n.startsWith('model.9.'))).toEqual([
      'model.9.conv.conv.weight', 'model.9.conv.bn.weight', 'model.9.conv.bn.bias', 'model.9.linear.weight', 'model.9.linear.bias',
    ]);
    expect(names.some((n) => n.startsWith('model.10.'))).toBe(false);
    expect(clf.params.get('model.9.conv.conv.weight')!.shape).toEqual([1, 1, 256, CLASSIFY_HIDDEN]);
    expect(clf.params.get('model.9.linear.weight')!.shape).toEqual([CLASSIFY_HIDDEN, 10]);
    expect(clf.buffers.has('model.9.conv.bn.running_var')).toBe(true);
    const logits = tf.tidy(() => clf.forward(tf.zeros([2, 64, 96, 3]) as tf.Tensor4D, false));
    expect(logits.shape).toEqual([2, 10]);
    logits.dispose();
    clf.dispose();
  });

  it('scales with the size and validates its fields', () => {
    expect(countParams(classifierDescription('s', 10))).toBeGreaterThan(countParams(classifierDescription('n', 10)));
    expect(countParams(classifierDescription('m', 10))).toBeGreaterThan(countParams(classifierDescription('s', 10)));
    expect(() => classifierDescription('n', 0)).toThrow(/^nc:/);
    expect(() => classifierDescription('n', 3, { dropout: 1 })).toThrow(/dropout/);
    expect(() => classifierDescription({ depth_multiple: 1, width_multiple: 0 }, 3)).toThrow(/width_multiple/);
  });

  it('trains: gradients for all params, dropout only in training, no leaked tensors', () => {
    const clf = createClassifier(classifierDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 3, { dropout: 0.5 }), { seed: 2 });
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => tf.sum(clf.forward(x, true)) as tf.Scalar, [...clf.params.values()]);
    expect(Object.keys(grads)).toHaveLength(clf.params.size);
    value.dispose();
    tf.dispose(grads);
    const [e1, e2] = tf.tidy(() => [clf.forward(x, false).dataSync(), clf.forward(x, false).dataSync()]);
    expect(e1).toEqual(e2);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    clf.dispose();
  });
});
