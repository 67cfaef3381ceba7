import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '../src/tf.js';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeightsError } from '../src/errors.js';
import { classifierDescription } from '@kd-edge/core';
import { createClassifier } from '../src/model/classifier.js';
import type { ClassificationModel, DetectionModel } from '../src/model/types.js';
import { loadModel, readTensorArchive, readTensorArchiveMeta, saveWeights, writeTensorArchive } from '../src/model/weights-io.js';
import { createYoloModel } from '../src/model/yolo.js';
import { yoloDescription } from '@kd-edge/core';

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'kd-weights-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tensor archive', () => {
  it('round-trips meta and tensors, including empty and odd-sized ones', async () => {
    const file = join(dir, 'a.kdw');
    const tensors = new Map([
      ['odd', { shape: [3], data: new Float32Array([1.5, -2, Number.MAX_VALUE > 0 ? 3.25 : 0]) }],
      ['empty', { shape: [0, 4], data: new Float32Array(0) }],
      ['m', { shape: [2, 2], data: new Float32Array([Math.PI, -0, Infinity, 1e-30]) }],
    ]);
    await writeTensorArchive(file, { epoch: 3, names: ['a'] }, tensors);
    const buf = readFileSync(file);
    expect(buf.toString('latin1', 0, 4)).toBe('KDW1');
    const back = await readTensorArchive(file);
    expect(back.meta).toEqual({ epoch: 3, names: ['a'] });
    expect([...back.tensors.keys()]).toEqual(['odd', 'empty', 'm']);
    for (const [k, t] of tensors) {
      expect(back.tensors.get(k)!.shape).toEqual(t.shape);
      expect(Buffer.from(back.tensors.get(k)!.data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true);
    }
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('reads the meta from the header alone, without the payload', async () => {
    const file = join(dir, 'h.kdw');
    await writeTensorArchive(file, { kind: 'x', epoch: 7 }, new Map([['w', { shape: [1024], data: new Float32Array(1024).fill(1) }]]));
    expect(await readTensorArchiveMeta(file)).toEqual({ kind: 'x', epoch: 7 });
    // A cut payload does not matter to the header; a foreign or missing file does.
    const buf = readFileSync(file);
    writeFileSync(join(dir, 'cut.kdw'), buf.subarray(0, buf.byteLength - 2048));
    expect(await readTensorArchiveMeta(join(dir, 'cut.kdw'))).toEqual({ kind: 'x', epoch: 7 });
    writeFileSync(join(dir, 'foreign.kdw'), 'PK\u0003\u0004 not ours');
    await expect(readTensorArchiveMeta(join(dir, 'foreign.kdw'))).rejects.toThrow(/foreign\.kdw.*not a kd-edge weights file/);
    await expect(readTensorArchiveMeta(join(dir, 'none.kdw'))).rejects.toThrow(/none\.kdw: cannot read \(ENOENT\)/);
  });

  it('reports missing, foreign, truncated and corrupted files as WeightsError naming the file', async () => {
    const file = join(dir, 'b.kdw');
    await writeTensorArchive(file, {}, new Map([['w', { shape: [64], data: new Float32Array(64).fill(0.5) }]]));
    const good = readFileSync(file);
    const cases: [string, Buffer | null, RegExp][] = [
      ['missing.kdw', null, /cannot read/],
      ['foreign.kdw', Buffer.from('PK\u0003\u0004 not ours'), /magic/],
      ['trunc.kdw', good.subarray(0, good.length - 10), /truncated/],
      ['trunc-header.kdw', good.subarray(0, 20), /truncated/],
      ['flip.kdw', Buffer.from(good.map((b, i) => (i === good.length - 7 ? b ^ 0x10 : b))), /checksum/],
      ['extra.kdw', Buffer.concat([good, Buffer.from([0])]), /unexpected bytes/],
    ];
    for (const [name, bytes, re] of cases) {
      const f = join(dir, name);
      if (bytes !== null) writeFileSync(f, bytes);
      const err = await readTensorArchive(f).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(WeightsError);
      expect((err as WeightsError).code).toBe('WEIGHTS_INVALID');
      expect((err as Error).message).toContain(f);
      expect((err as Error).message).toMatch(re);
    }
    await expect(loadModel(file)).rejects.toThrow(/holds no model/);
  });

  it('replaces an existing file only once the new one is complete', async () => {
    const file = join(dir, 'c.kdw');
    await writeTensorArchive(file, { v: 1 }, new Map());
    await expect(writeTensorArchive(file, { v: 2 }, new Map([['bad', { shape: [2], data: new Float32Array(3) }]])))
      .rejects.toThrow(RangeError);
    expect((await readTensorArchive(file)).meta).toEqual({ v: 1 });
  });
});

describe('saveWeights / loadModel', () => {
  it('reloads a trained-state detector with bitwise-identical outputs, meta and extra tensors', async () => {
    const model: DetectionModel = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 3), { seed: 9 });
    // Non-default running stats so that buffers are checked too.
    tf.tidy(() => model.buffers.get('model.4.m.0.cv1.bn.running_var')!.assign(tf.fill([16], 2.5)));
    const file = join(dir, 'det.kdw');
    const ema = tf.ones([2, 3]);
    await saveWeights(file, model, {
      meta: { epoch: 7, optimizer: 'sgd' },
      tensors: { 'ema/model.0.conv.weight': ema, momentum: { shape: [2], data: new Float32Array([1, 2]) } },
    });
    const { model: loaded, meta, extraTensors } = await loadModel(file);
    expect(loaded.kind).toBe('detect');
    expect(loaded.description).toEqual(model.description);
    expect(meta).toEqual({ epoch: 7, optimizer: 'sgd' });
    expect(extraTensors['ema/model.0.conv.weight']).toEqual({ shape: [2, 3], data: new Float32Array(6).fill(1) });
    expect(extraTensors.momentum!.data).toEqual(new Float32Array([1, 2]));
    const x = tf.randomUniform([1, 64, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const a = tf.tidy(() => (model.forward(x, false)).map((t) => t.dataSync()));
    const b = tf.tidy(() => (loaded as DetectionModel).forward(x, false).map((t) => t.dataSync()));
    a.forEach((t, i) => expect(Buffer.from(b[i]!.buffer).equals(Buffer.from(t.buffer))).toBe(true));
    [model, loaded].forEach((m) => m.dispose());
    tf.dispose([x, ema]);
  });

  it('reloads a classifier', async () => {
    const clf: ClassificationModel = createClassifier(classifierDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 4));
    const file = join(dir, 'clf.kdw');
    await saveWeights(file, clf);
    const { model, meta, extraTensors } = await loadModel(file);
    expect([model.kind, meta, extraTensors]).toEqual(['classify', {}, {}]);
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const [p, q] = tf.tidy(() => [clf.forward(x, false).dataSync(), (model as ClassificationModel).forward(x, false).dataSync()]);
    expect(q).toEqual(p);
    [clf, model].forEach((m) => m.dispose());
    x.dispose();
  });

  it('rejects a file whose tensors do not fit its description', async () => {
    const file = join(dir, 'mismatch.kdw');
    const m = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 1));
    await saveWeights(file, m);
    const arc = await readTensorArchive(file);
    arc.tensors.set('params/model.0.conv.weight', { shape: [1], data: new Float32Array(1) });
    await writeTensorArchive(file, arc.meta, arc.tensors);
    await expect(loadModel(file)).rejects.toThrow(/model\.0\.conv\.weight has shape \[1\]/);
    arc.tensors.delete('params/model.0.conv.weight');
    await writeTensorArchive(file, arc.meta, arc.tensors);
    await expect(loadModel(file)).rejects.toThrow(WeightsError);
    m.dispose();
  });
});
