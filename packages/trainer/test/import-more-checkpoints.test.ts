import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeYoloOutputs, describeModelYaml, planYolo, yoloDescription } from '@kd-edge/core';
import { selectBackend } from '../src/backend/select.js';
import { WeightsError } from '../src/errors.js';
import { convertWeights } from '../src/import/convert.js';
import { loadDetectionModel, readSourceWeights } from '../src/import/load-weights.js';
import { PickleGlobal, PickleObject, type PickleValue } from '../src/import/pickle-reader.js';
import { moduleClasses, moduleStateDict, parseTorchCheckpoint, parseUltralyticsCheckpoint, readTorchCheckpoint, readUltralyticsCheckpoint, type TorchTensor } from '../src/import/torch-checkpoint.js';
import type { DetectionModel } from '../src/model/types.js';
import * as tf from '../src/tf.js';
import { FIX, rawHeadError } from './import-fixtures.js';

// Checkpoints of the kinds users bring, made by ultralytics' own code (fixtures/ultralytics/make-more-fixtures.sh,
// README "More checkpoints"): a P6 model, AutoAnchor'ed anchors, an un-stripped epoch checkpoint, and classes
// kd-trainer must refuse by name.

interface Reference {
  model: { names: Record<string, string>; anchorsPixels: number[][][]; nc: number; stride: number[]; yaml: { anchors: number[][] } };
  checkpoint: { modelKey: string };
  stateDict: { count: number };
  files: { output: { shape: number[] } };
}
const reference = (stem: string): Reference => JSON.parse(readFileSync(join(FIX, `${stem}.reference.json`), 'utf8')) as Reference;
const f32 = (name: string): Float32Array => {
  const b = readFileSync(join(FIX, name));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

/**
 * Largest |ours − PyTorch| / max(1, |PyTorch|) over the decoded output `cat(z)` ([1, rows, 5+nc]: boxes in input
 * pixels, probabilities), ours decoded from our raw head with our strides and anchors: this is where anchors count.
 */
async function decodedError(model: DetectionModel, stem: string, side: number): Promise<number> {
  const x = tf.tidy(() => tf.tensor4d(f32(`${stem}.input.bin`), [1, 3, side, side]).transpose([0, 2, 3, 1]) as tf.Tensor4D);
  const outs = model.forward(x, false);
  const levels = await Promise.all(outs.map(async (o, l) => ({
    data: (await o.data()) as Float32Array, ny: o.shape[1], nx: o.shape[2], stride: model.strides[l]!, anchors: model.anchors[l]!,
  })));
  tf.dispose([x, ...outs]);
  const ours = decodeYoloOutputs(levels, 1, model.nc);
  const ref = f32(`${stem}.output.bin`);
  expect(ours.length).toBe(ref.length);
  let err = 0;
  for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(ours[i]! - ref[i]!) / Math.max(1, Math.abs(ref[i]!)));
  return err;
}

async function rejection(p: Promise<unknown>): Promise<WeightsError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(WeightsError);
  return err as WeightsError;
}

describe('ultralytics checkpoints beyond yolov5n: P6, AutoAnchor, un-stripped', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it('a P6 model (yolov5n6.yaml): 4 levels, strides 8–64, anchors P3–P6, PyTorch\'s outputs', async () => {
    const stem = 'p6-nc3-v7';
    const ref = reference(stem);
    const { model, notes } = await loadDetectionModel(join(FIX, `${stem}.pt`));
    expect(notes[0]).toBe(`Transferred ${ref.stateDict.count}/${ref.stateDict.count} items from ${stem}.pt`);
    expect(ref.stateDict.count).toBe(459);
    expect([model.nl, model.na, model.nc]).toEqual([4, 3, 3]);
    expect(model.strides).toEqual([8, 16, 32, 64]);
    expect(model.strides).toEqual(ref.model.stride);
    expect(planYolo(model.description).maxStride).toBe(64);
    expect(model.anchors).toEqual(ref.model.anchorsPixels.map((level) => level.flat()));
    expect(model.anchors[3]).toEqual([436, 615, 739, 380, 925, 792]);
    expect(model.description.names).toEqual(['circle', 'square', 'triangle']);
    const { maxErr, maxRef } = await rawHeadError(model, stem, 128);
    expect(maxRef).toBeGreaterThan(1);
    expect(maxErr).toBeLessThan(1e-4);
    expect(await decodedError(model, stem, 128)).toBeLessThan(1e-4);
    model.dispose();
  });

  it('a P6 model transfers to another class count (8 Detect tensors fresh) and converts to a .kdw', async () => {
    const file = join(FIX, 'p6-nc3-v7.pt');
    const { model, notes, transfer } = await loadDetectionModel(file, { nc: 5 });
    expect(notes[0]).toBe('Transferred 451/459 items from p6-nc3-v7.pt');
    expect(transfer.skipped).toEqual([0, 1, 2, 3].flatMap((l) => [`model.33.m.${l}.weight`, `model.33.m.${l}.bias`]));
    model.dispose();
    const out = join(mkdtempSync(join(tmpdir(), 'kd-more-')), 'p6.kdw');
    expect(await convertWeights(file, out)).toMatchObject({ kind: 'pt', tensors: 383 });
    const { model: back, notes: n2 } = await loadDetectionModel(out);
    expect(n2[0]).toBe('Transferred 459/459 items from p6.kdw');
    expect(back.strides).toEqual([8, 16, 32, 64]);
    expect((await rawHeadError(back, 'p6-nc3-v7', 128)).maxErr).toBeLessThan(1e-4);
    back.dispose();
  });

  it('anchors changed by AutoAnchor: taken from Detect\'s anchors buffer × stride, not from the yaml', async () => {
    const stem = 'autoanchor-nc2-v7';
    const ref = reference(stem);
    const { model, notes } = await loadDetectionModel(join(FIX, `${stem}.pt`));
    expect(notes[0]).toBe('Transferred 349/349 items from autoanchor-nc2-v7.pt');
    const fromBuffer = ref.model.anchorsPixels.map((level) => level.flat());
    expect(model.anchors).toEqual(fromBuffer);
    expect(fromBuffer).not.toEqual(ref.model.yaml.anchors); // the yaml still holds the COCO anchors
    expect(fromBuffer.flat().some((v) => !Number.isInteger(v))).toBe(true);
    expect((await rawHeadError(model, stem, 128)).maxErr).toBeLessThan(1e-4);
    expect(await decodedError(model, stem, 128)).toBeLessThan(1e-4);
    // A .kdw keeps them, and so does a transfer to another class count.
    const out = join(mkdtempSync(join(tmpdir(), 'kd-more-')), 'aa.kdw');
    await convertWeights(join(FIX, `${stem}.pt`), out);
    const { model: back } = await loadDetectionModel(out);
    expect(back.anchors).toEqual(fromBuffer);
    expect(await decodedError(back, stem, 128)).toBeLessThan(1e-4);
    const { model: other } = await loadDetectionModel(join(FIX, `${stem}.pt`), { nc: 4 });
    expect(other.anchors).toEqual(fromBuffer);
    for (const m of [model, back, other]) m.dispose();
  });

  it('an un-stripped epoch checkpoint (fp16 model + ema, SGD state, storages on cuda:0): uses the EMA, as ultralytics', async () => {
    const stem = 'unstripped-nc2-v7';
    const ref = reference(stem);
    expect(ref.checkpoint.modelKey).toBe('ema');
    const { model, notes } = await loadDetectionModel(join(FIX, `${stem}.pt`));
    expect(notes[0]).toBe('Transferred 349/349 items from unstripped-nc2-v7.pt');
    expect(notes[1]).toMatch(/models\.yolo\.DetectionModel \(float16, 'ema' entry, epoch 0, /);
    const { maxErr, maxRef } = await rawHeadError(model, stem, 128);
    expect(maxRef).toBeGreaterThan(1);
    expect(maxErr).toBeLessThan(1e-4);
    model.dispose();

    const ckpt = (await readTorchCheckpoint(join(FIX, `${stem}.pt`))) as Map<string, PickleValue>;
    expect([...ckpt.keys()]).toEqual(['epoch', 'best_fitness', 'model', 'ema', 'updates', 'optimizer', 'opt', 'git', 'date']);
    expect(ckpt.get('updates')).toBe(3003);
    expect((ckpt.get('best_fitness') as PickleObject).className).toBe('numpy.ndarray');
    const optimizer = ckpt.get('optimizer') as Map<string, PickleValue>;
    const state = optimizer.get('state') as Map<PickleValue, PickleValue>;
    expect(state.size).toBe(177);
    expect([...state.keys()].every((k) => typeof k === 'number')).toBe(true);
    const momentum = (state.get(0) as Map<string, PickleValue>).get('momentum_buffer') as TorchTensor;
    expect([momentum.dtype, momentum.storage.location]).toEqual(['float32', 'cuda:0']);
    expect((optimizer.get('param_groups') as PickleValue[]).length).toBe(3);
    const opt = ckpt.get('opt') as Map<string, PickleValue>;
    expect((opt.get('hyp') as Map<string, PickleValue>).get('lr0')).toBe(0.01);
    // The 'model' entry (the raw weights, not the EMA) is another network state.
    const uc = await readUltralyticsCheckpoint(join(FIX, `${stem}.pt`));
    expect(uc.entry).toBe('ema');
    const raw = moduleStateDict(ckpt.get('model') as PickleObject);
    const ema = moduleStateDict(ckpt.get('ema') as PickleObject);
    expect([...raw.keys()]).toEqual([...ema.keys()]);
    const w = 'model.0.bn.weight';
    expect(Array.from(raw.get(w)!.data as Float32Array)).not.toEqual(Array.from(ema.get(w)!.data as Float32Array));
    expect(Array.from(uc.stateDict.get(w)!.data)).toEqual(Array.from(ema.get(w)!.data as Float32Array));
  });
});

// make-fixtures.sh leaves train.py's un-stripped epoch checkpoint of yolov5n-nc3-v7 in scratch (14.5 MB, not
// committed). Its 'ema' is the model strip_optimizer kept in yolov5n-nc3-v7.pt, so PyTorch's outputs are those.
const EPOCH1 = process.env.KD_EDGE_EPOCH1_PT ?? '/work/tmp/ultra/runs/v7-nc3/weights/epoch1.pt';

describe.skipIf(!existsSync(EPOCH1))('the real un-stripped train.py checkpoint of yolov5n-nc3-v7 (scratch, when present)', () => {
  it('loads its EMA and computes PyTorch\'s outputs of the stripped yolov5n-nc3-v7.pt', async () => {
    await selectBackend('wasm');
    const { model, notes } = await loadDetectionModel(EPOCH1);
    expect(notes[0]).toMatch(/^Transferred 349\/349 items from /);
    expect(notes[1]).toMatch(/\(float16, 'ema' entry, epoch 1, /);
    const { maxErr, maxRef } = await rawHeadError(model, 'yolov5n-nc3-v7', 128);
    expect(maxRef).toBeGreaterThan(1);
    expect(maxErr).toBeLessThan(1e-4);
    model.dispose();
  });
});

describe('checkpoints kd-trainer refuses, naming what it does not support', () => {
  const cases: Array<[string, RegExp]> = [
    ['seg-nc3-v7.pt', /seg-nc3-v7\.pt: 'model' is a models\.yolo\.SegmentationModel, a YOLOv5 instance-segmentation model .*not a YOLOv5 detection model/],
    ['cls-nc3-v7.pt', /cls-nc3-v7\.pt: 'model' is a models\.yolo\.ClassificationModel, a YOLOv5 image-classification model .*not a YOLOv5 detection model/],
    ['focus-nc2-v5.0.pt', /focus-nc2-v5\.0\.pt: its network uses modules kd-trainer does not build: models\.common\.Focus \(model\.0\), models\.common\.SPP \(model\.8\)\..* before v6\.0/],
    ['leakyrelu-nc2-v7.pt', /leakyrelu-nc2-v7\.pt: its network uses modules kd-trainer does not build: torch\.nn\.modules\.activation\.LeakyReLU \(model\.0\.act, model\.1\.act, \+55 more\)\..*SiLU activations only/],
  ];

  it.each(cases)('%s', async (file, message) => {
    const err = await rejection(readSourceWeights(join(FIX, file)));
    expect(err.code).toBe('WEIGHTS_INVALID');
    expect(err.message).toMatch(message);
    // `kd-trainer convert` and --weights read the file the same way.
    const out = join(mkdtempSync(join(tmpdir(), 'kd-more-')), 'x.kdw');
    expect((await rejection(convertWeights(join(FIX, file), out))).message).toMatch(message);
    expect((await rejection(loadDetectionModel(join(FIX, file), { nc: 2 }))).message).toMatch(message);
  });

  it('reads what those files hold without refusing a pickle global: Segment.detect, the classifier\'s transforms', async () => {
    const seg = (await readTorchCheckpoint(join(FIX, 'seg-nc3-v7.pt'))) as Map<string, PickleValue>;
    const segHead = [...(((((seg.get('model') as PickleObject).state as Map<string, PickleValue>).get('_modules') as Map<string, PickleValue>)
      .get('model') as PickleObject).state as Map<string, PickleValue>).get('_modules') as Map<string, PickleValue>].at(-1)![1] as PickleObject;
    expect(segHead.className).toBe('models.yolo.Segment');
    const detect = (segHead.state as Map<string, PickleValue>).get('detect');
    expect(detect).toBeInstanceOf(PickleGlobal);
    expect((detect as PickleGlobal).fullName).toBe('models.yolo.Detect.forward');
    const cls = (await readTorchCheckpoint(join(FIX, 'cls-nc3-v7.pt'))) as Map<string, PickleValue>;
    const transforms = ((cls.get('model') as PickleObject).state as Map<string, PickleValue>).get('transforms') as PickleObject;
    expect(transforms.className).toBe('torchvision.transforms.transforms.Compose');
    expect((cls.get('opt') as Map<string, PickleValue>).get('save_dir')).toMatch(/runs\/train-cls\/exp$/);
  });

  it('a model yaml with another activation is refused before a SiLU network is built for it', () => {
    const yaml = yoloDescription('n', 2);
    expect(() => describeModelYaml({ ...yaml, activation: 'nn.LeakyReLU(0.1)' })).toThrow(/activation: "nn\.LeakyReLU\(0\.1\)" is not supported; kd-edge builds Conv layers with SiLU/);
    expect(() => describeModelYaml({ ...yaml, activation: 'nn.ReLU()' })).toThrow(/activation/);
    expect(describeModelYaml({ ...yaml, activation: 'nn.SiLU()' }).nc).toBe(2);
    expect(describeModelYaml({ ...yaml, activation: null }).nc).toBe(2);
  });
});

describe('module walks of a hostile checkpoint', () => {
  it('stop on a chain of shared children (2^40 paths) instead of running for ever', () => {
    let m = new PickleObject('torch.nn.modules.container.Sequential');
    m.state = new Map<PickleValue, PickleValue>([['_modules', new Map()]]);
    for (let i = 0; i < 40; i++) {
      const parent = new PickleObject('torch.nn.modules.container.Sequential');
      parent.state = new Map<PickleValue, PickleValue>([['_modules', new Map<PickleValue, PickleValue>([['a', m], ['b', m]])]]);
      m = parent;
    }
    expect(() => moduleStateDict(m, 'chain.pt')).toThrow(/chain\.pt: more than 200000 submodules/);
    expect(() => moduleClasses(m, 'chain.pt')).toThrow(/chain\.pt: more than 200000 submodules/);
  });
});

describe('getattr in a checkpoint pickle', () => {
  // A zip with one stored member, as torch.save writes (enough for parseTorchCheckpoint).
  const zipOf = (name: string, data: Uint8Array): Uint8Array => {
    const n = Buffer.from(name);
    const crc = zlib.crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(data.length, 20);
    cd.writeUInt32LE(data.length, 24);
    cd.writeUInt16LE(n.length, 28);
    const cdOffset = 30 + n.length + data.length;
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(1, 8);
    end.writeUInt16LE(1, 10);
    end.writeUInt32LE(46 + n.length, 12);
    end.writeUInt32LE(cdOffset, 16);
    return Buffer.concat([local, n, data, cd, n, end]);
  };
  const ckpt = (body: string): Uint8Array => zipOf('c/data.pkl', Buffer.from(`\x80\x02${body}`, 'latin1'));
  const str = (s: string): string => `X${String.fromCharCode(s.length)}\x00\x00\x00${s}`;
  const getattr = (owner: string, attr: string): string => `c__builtin__\ngetattr\n${owner}${str(attr)}\x86R`;

  it('reads an attribute of an allowed class as a value that cannot be called', () => {
    const v = parseTorchCheckpoint(ckpt(`}${str('detect')}${getattr('cmodels.yolo\nDetect\n', 'forward')}s.`), 'ok.pt') as Map<string, PickleValue>;
    expect((v.get('detect') as PickleGlobal).fullName).toBe('models.yolo.Detect.forward');
    expect(() => parseTorchCheckpoint(ckpt(`${getattr('cmodels.yolo\nDetect\n', 'forward')})R.`), 'call.pt')).toThrow(/refusing to call pickle global models\.yolo\.Detect\.forward/);
  });

  it('refuses getattr on anything but an allowed class, and on classes that are not allowed', () => {
    expect(() => parseTorchCheckpoint(ckpt(`${getattr(str('abc'), 'upper')}.`), 'str.pt')).toThrow(WeightsError);
    expect(() => parseTorchCheckpoint(ckpt(`${getattr('ctorch\nHalfStorage\n', 'from_file')}.`), 'storage.pt')).toThrow(/getattr\(.*\) is refused/);
    expect(() => parseTorchCheckpoint(ckpt(`${getattr('cos\nsystem\n', '__call__')}.`), 'os.pt')).toThrow(/refusing pickle global os\.system/);
    expect(() => parseTorchCheckpoint(ckpt(`${getattr('cmodels.yolo\nDetect\n', 'a.b')}.`), 'dots.pt')).toThrow(/is refused/);
  });

  it('names a checkpoint of the ultralytics package (YOLOv8 family) as such', () => {
    expect(() => parseUltralyticsCheckpoint(ckpt(`}${str('model')}cultralytics.nn.tasks\nDetectionModel\n)\x81s.`), 'v8.pt')).toThrow(
      /v8\.pt:c\/data\.pkl: refusing pickle global ultralytics\.nn\.tasks\.DetectionModel .*: a checkpoint of the 'ultralytics' package \(YOLOv8\/YOLO11\/YOLOv5u/,
    );
  });
});
