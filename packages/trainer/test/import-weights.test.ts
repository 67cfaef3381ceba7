import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { yoloDescription } from '@kd-edge/core';
import * as tf from '../src/tf.js';
import { selectBackend } from '../src/backend/select.js';
import { loadDetectionModel, readSourceWeights } from '../src/import/load-weights.js';
import { convertWeights } from '../src/import/convert.js';
import { namesFromMetadata } from '../src/import/from-onnx.js';
import type { DetectionModel } from '../src/model/types.js';
import { FIX, rawHeadError } from './import-fixtures.js';
import { saveWeights } from '../src/model/weights-io.js';
import { createYoloModel } from '../src/model/yolo.js';

const tensorOf = async (m: DetectionModel, name: string): Promise<Float32Array> => (await (m.params.get(name) ?? m.buffers.get(name))!.data()) as Float32Array;

interface Reference { model: { names: Record<string, string> | string[]; anchorsPixels: number[][][]; nc: number }; input: { shape: number[] } }
const reference = (stem: string): Reference => JSON.parse(readFileSync(join(FIX, `${stem}.reference.json`), 'utf8')) as Reference;

describe('pretrained weights from ultralytics .pt checkpoints (read without executing the pickle)', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it.each([
    ['yolov5n-nc3-v7', 'n', 349],
    ['tiny-nc2-v6.1', 'custom', 349],
  ])('%s: the network, names and anchors it carries, and PyTorch\'s outputs on the same input', async (stem, scale, items) => {
    const ref = reference(stem);
    const { model, notes, kind } = await loadDetectionModel(join(FIX, `${stem}.pt`));
    expect(kind).toBe('pt');
    expect(model.description.scale).toBe(scale);
    expect(notes[0]).toBe(`Transferred ${items}/${items} items from ${stem}.pt`);
    expect(notes[1]).toMatch(/DetectionModel|Model/);
    expect(model.nc).toBe(ref.model.nc);
    expect(model.description.names).toEqual(Object.values(ref.model.names));
    expect(model.anchors).toEqual(ref.model.anchorsPixels.map((level) => level.flat()));
    const { maxErr, maxRef } = await rawHeadError(model, stem, ref.input.shape[2]!);
    expect(maxRef).toBeGreaterThan(0.5);
    expect(maxErr).toBeLessThan(1e-4);
    model.dispose();
  });

  it('transfers a checkpoint to a dataset with other classes: 343/349 as ultralytics prints', async () => {
    const { notes, model } = await loadDetectionModel(join(FIX, 'yolov5n-nc3-v7.pt'), { nc: 6 });
    expect(notes[0]).toBe('Transferred 343/349 items from yolov5n-nc3-v7.pt');
    model.dispose();
  });
});

describe('pretrained weights from an ultralytics ONNX export', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it('recognises yolov5n, rebuilds the folded BatchNorms and computes what PyTorch computes', async () => {
    const { model, notes, kind } = await loadDetectionModel(join(FIX, 'yolov5n-nc3-v7.onnx'));
    expect(kind).toBe('onnx');
    expect(model.description.scale).toBe('n');
    expect(model.nc).toBe(3);
    expect(notes[0]).toBe('Transferred 349/349 items from yolov5n-nc3-v7.onnx');
    expect(notes[1]).toMatch(/BatchNorm was folded into 57 convolutions/);
    const ref = JSON.parse(readFileSync(join(FIX, 'yolov5n-nc3-v7.reference.json'), 'utf8')) as { model: { names: Record<string, string>; anchorsPixels: number[][][] } };
    expect(model.anchors).toEqual(ref.model.anchorsPixels.map((level) => level.flat()));
    expect(model.description.names).toEqual(Object.values(ref.model.names));
    const { maxErr, maxRef } = await rawHeadError(model, 'yolov5n-nc3-v7', 128);
    expect(maxRef).toBeGreaterThan(1);
    expect(maxErr).toBeLessThan(1e-4);
    model.dispose();
  });

  it('transfers all but the Detect outputs to a dataset with another class count (343/349, bias prior kept)', async () => {
    const onnx = join(FIX, 'yolov5n-nc3-v7.onnx');
    const { model: same } = await loadDetectionModel(onnx);
    const { model, notes, transfer } = await loadDetectionModel(onnx, { nc: 5, names: ['a', 'b', 'c', 'd', 'e'], seed: 3 });
    expect(notes[0]).toBe('Transferred 343/349 items from yolov5n-nc3-v7.onnx');
    expect(notes.at(-1)).toMatch(/has nc=3; the Detect outputs are initialised fresh for nc=5/);
    expect(transfer.skipped).toEqual(['model.24.m.0.weight', 'model.24.m.0.bias', 'model.24.m.1.weight', 'model.24.m.1.bias', 'model.24.m.2.weight', 'model.24.m.2.bias']);
    expect(model.nc).toBe(5);
    expect(model.description.names).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await tensorOf(model, 'model.23.cv3.conv.weight')).toEqual(await tensorOf(same, 'model.23.cv3.conv.weight'));
    // PyTorch's uniform init (bound 1/√c1, c1 = 64 at P3 of yolov5n) plus ultralytics' _initialize_biases
    // prior: objectness log(8/(640/s)²), classes log(0.6/(nc−0.99)); the trained nc=3 head had other values.
    const bias = await tensorOf(model, 'model.24.m.0.bias');
    const bound = 1 / Math.sqrt(64);
    for (let a = 0; a < 3; a++) {
      expect(Math.abs(bias[a * 10 + 4]! - Math.log(8 / (640 / 8) ** 2))).toBeLessThanOrEqual(bound);
      expect(Math.abs(bias[a * 10 + 5]! - Math.log(0.6 / (5 - 0.99)))).toBeLessThanOrEqual(bound);
    }
    same.dispose();
    model.dispose();
  });

  it('kd-trainer convert writes a .kdw that loads as the same network', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'kd-convert-')), 'y.kdw');
    const r = await convertWeights(join(FIX, 'yolov5n-nc3-v7.onnx'), out);
    expect(r).toMatchObject({ kind: 'onnx', tensors: 291 });
    const { model, kind, notes } = await loadDetectionModel(out);
    expect([kind, notes[0]]).toEqual(['kdw', 'Transferred 349/349 items from y.kdw']);
    expect(model.description.names).toEqual(['circle', 'square', 'triangle']);
    expect((await rawHeadError(model, 'yolov5n-nc3-v7', 128)).maxErr).toBeLessThan(1e-4);
    model.dispose();
  });

  it('reads ultralytics names metadata (a Python dict) and refuses files that are no YOLOv5 export', async () => {
    expect(namesFromMetadata("{0: 'person', 1: \"it's\", 2: 'car'}")).toEqual(['person', "it's", 'car']);
    expect(namesFromMetadata('["a","b"]')).toEqual(['a', 'b']);
    const dir = mkdtempSync(join(tmpdir(), 'kd-import-'));
    writeFileSync(join(dir, 'junk.onnx'), 'not protobuf at all');
    await expect(readSourceWeights(join(dir, 'junk.onnx'))).rejects.toMatchObject({ code: 'WEIGHTS_INVALID' });
    await expect(readSourceWeights(join(dir, 'missing.onnx'))).rejects.toThrow(/missing\.onnx: cannot read \(ENOENT\)/);
    writeFileSync(join(dir, 'other.bin'), 'xxxx');
    await expect(readSourceWeights(join(dir, 'other.bin'))).rejects.toThrow(/not a kd-edge \.kdw, an ultralytics \.pt checkpoint or an ONNX file/);
  });
});

describe('pretrained weights from a .kdw', () => {
  it('fine-tunes a .kdw on a dataset with another class count instead of refusing it', async () => {
    await selectBackend('wasm');
    const dir = mkdtempSync(join(tmpdir(), 'kd-import-'));
    const src = createYoloModel({ ...yoloDescription('n', 3), names: ['x', 'y', 'z'] }, { seed: 4 });
    await saveWeights(join(dir, 'w.kdw'), src);
    const { model, notes } = await loadDetectionModel(join(dir, 'w.kdw'), { nc: 2 });
    expect(notes[0]).toBe('Transferred 343/349 items from w.kdw');
    expect(model.description.names).toBeUndefined();
    expect(await tensorOf(model, 'model.0.conv.weight')).toEqual(await tensorOf(src, 'model.0.conv.weight'));
    const { model: same, notes: n2 } = await loadDetectionModel(join(dir, 'w.kdw'));
    expect(n2[0]).toBe('Transferred 349/349 items from w.kdw');
    expect(same.description.names).toEqual(['x', 'y', 'z']);
    tf.dispose([src, model, same].map(() => [] as tf.Tensor[]).flat());
    for (const m of [src, model, same]) m.dispose();
  });
});
