import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { WeightsError } from '../src/errors.js';
import { PickleObject, type PickleValue } from '../src/import/pickle-reader.js';
import {
  isTorchTensor,
  moduleStateDict,
  parseTorchCheckpoint,
  parseUltralyticsCheckpoint,
  readTorchCheckpoint,
  readUltralyticsCheckpoint,
  type TorchTensor,
} from '../src/import/torch-checkpoint.js';
import { ZipReader } from '../src/import/zip-reader.js';

// Fixtures from fixtures/torch/make-torch-fixtures.py (Debian's torch 1.13) and, when present, the real
// ultralytics checkpoints of fixtures/ultralytics/ with their reference JSON.
const FIXTURES = join(import.meta.dirname, 'fixtures/torch');
const ULTRALYTICS = join(import.meta.dirname, 'fixtures/ultralytics');
const fixturePath = (name: string): string => join(FIXTURES, name);
const fixture = (name: string): Uint8Array => readFileSync(fixturePath(name));
const json = <T>(name: string): T => JSON.parse(readFileSync(fixturePath(name), 'utf8')) as T;

interface TensorJson {
  dtype: string;
  shape: number[];
  strides: number[];
  offset: number;
  values: number[];
}

function values(t: TorchTensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

/** Runs `fn`, returning the error it throws (or undefined). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err;
  }
}

/** A zip of `members`, optionally with every size and offset moved to ZIP64 fields (APPNOTE 4.5.3). */
function buildZip(members: Array<{ name: string; data: Uint8Array; method?: number }>, zip64 = false): Uint8Array {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const name = Buffer.from(m.name);
    const method = m.method ?? 0;
    const body = method === 8 ? zlib.deflateRawSync(m.data) : Buffer.from(m.data);
    const crc = zlib.crc32(m.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(zip64 ? 45 : 20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(zip64 ? 0xffffffff : body.length, 18);
    local.writeUInt32LE(zip64 ? 0xffffffff : m.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const localExtra = zip64 ? zip64Extra([m.data.length, body.length]) : Buffer.alloc(0);
    local.writeUInt16LE(localExtra.length, 28);
    parts.push(local, name, localExtra, body);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(45, 4);
    cd.writeUInt16LE(zip64 ? 45 : 20, 6);
    cd.writeUInt16LE(method, 10);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(zip64 ? 0xffffffff : body.length, 20);
    cd.writeUInt32LE(zip64 ? 0xffffffff : m.data.length, 24);
    cd.writeUInt16LE(name.length, 28);
    const cdExtra = zip64 ? zip64Extra([m.data.length, body.length, offset]) : Buffer.alloc(0);
    cd.writeUInt16LE(cdExtra.length, 30);
    cd.writeUInt32LE(zip64 ? 0xffffffff : offset, 42);
    central.push(cd, name, cdExtra);
    offset += local.length + name.length + localExtra.length + body.length;
  }
  const cdBytes = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(members.length), 24);
    rec.writeBigUInt64LE(BigInt(members.length), 32);
    rec.writeBigUInt64LE(BigInt(cdBytes.length), 40);
    rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cdBytes.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(zip64 ? 0xffff : members.length, 8);
  eocd.writeUInt16LE(zip64 ? 0xffff : members.length, 10);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : cdBytes.length, 12);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : offset, 16);
  return Buffer.concat([...parts, cdBytes, ...tail, eocd]);
}

function zip64Extra(fields: number[]): Buffer {
  const b = Buffer.alloc(4 + 8 * fields.length);
  b.writeUInt16LE(0x0001, 0);
  b.writeUInt16LE(8 * fields.length, 2);
  fields.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), 4 + 8 * i));
  return b;
}

/** Every member of a zip fixture, to rebuild it in another shape. */
function members(file: string): Array<{ name: string; data: Uint8Array }> {
  const zip = new ZipReader(fixture(file), file);
  return zip.names().map((name) => ({ name, data: new Uint8Array(zip.read(name)) }));
}

const bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');

/** Reads the data of every tensor in a tree, so the lazy storage reads (and their CRC checks) all run. */
function touchAll(v: PickleValue, seen = new Set<unknown>()): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (isTorchTensor(v)) void v.data;
  else if (v instanceof Map) for (const [k, x] of v) touchAll(k, seen), touchAll(x, seen);
  else if (Array.isArray(v) || v instanceof Set) for (const x of v) touchAll(x, seen);
  else if (v instanceof PickleObject) touchAll(v.state, seen);
}

describe('readTorchCheckpoint', () => {
  const expected = json<Record<string, TensorJson>>('tensors.json');

  it.each(['tensors.pt', 'tensors-deflate.pt'])('resolves every dtype, view and offset of %s', async (file) => {
    const ckpt = (await readTorchCheckpoint(fixturePath(file))) as Map<string, PickleValue>;
    expect([...ckpt.keys()]).toEqual(Object.keys(expected));
    for (const [name, want] of Object.entries(expected)) {
      const t = ckpt.get(name);
      expect(isTorchTensor(t), name).toBe(true);
      const tensor = t as TorchTensor;
      expect({ dtype: tensor.dtype, shape: tensor.shape, strides: tensor.strides, offset: tensor.storageOffset }, name).toEqual({
        dtype: want.dtype,
        shape: want.shape,
        strides: want.strides,
        offset: want.offset,
      });
      expect(values(tensor), name).toEqual(want.values);
      expect(tensor.data.length).toBe(want.values.length);
    }
    const t = (k: string): TorchTensor => ckpt.get(k) as TorchTensor;
    // Floats come back as float32 whatever they were stored as; integers keep their width.
    expect(t('half').data).toBeInstanceOf(Float32Array);
    expect(t('double').data).toBeInstanceOf(Float32Array);
    expect(t('long').data).toBeInstanceOf(BigInt64Array);
    expect(t('uint8').data).toBeInstanceOf(Uint8Array);
    // Two views of one storage share it (and its single decode).
    expect(t('shared_a').storage).toBe(t('shared_b').storage);
    expect(t('shared_b').storageOffset).toBe(5);
    expect(t('param').requiresGrad).toBe(true);
  });

  it('reads a whole nn.Module as records whose state_dict matches torch', async () => {
    const module = await readTorchCheckpoint(fixturePath('sequential.pt'));
    expect(module).toBeInstanceOf(PickleObject);
    expect((module as PickleObject).className).toBe('torch.nn.modules.container.Sequential');
    const want = json<Record<string, TensorJson>>('sequential.json');
    const sd = moduleStateDict(module as PickleObject);
    expect([...sd.keys()]).toEqual(Object.keys(want));
    expect([...sd.keys()]).toEqual(['0.weight', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked']);
    for (const [name, t] of sd) {
      expect({ dtype: t.dtype, shape: t.shape, values: values(t) }, name).toEqual({ dtype: want[name]!.dtype, shape: want[name]!.shape, values: want[name]!.values });
    }
    expect(values(sd.get('1.num_batches_tracked')!)).toEqual([17]);
  });

  it('reads a ZIP64 archive with every size in the extra field', () => {
    const zip64 = buildZip(members('tensors.pt'), true);
    const ckpt = parseTorchCheckpoint(zip64, 'zip64.pt') as Map<string, PickleValue>;
    for (const [name, want] of Object.entries(expected)) expect(values(ckpt.get(name) as TorchTensor), name).toEqual(want.values);
  });

  it('says what is wrong with files that are not torch.save checkpoints', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kd-torch-'));
    try {
      const cases: Array<[string, Uint8Array | null, RegExp]> = [
        ['missing.pt', null, /missing\.pt: cannot read \(ENOENT\)/],
        ['empty.pt', new Uint8Array(0), /empty\.pt: not a zip archive/],
        ['text.pt', bytes('this is not a checkpoint at all, just some text'), /text\.pt: not a zip archive/],
        ['legacy.pt', fixture('legacy.pt'), /legacy\.pt: legacy torch\.save format/],
        ['nopkl.pt', buildZip([{ name: 'a/version', data: bytes('3\n') }]), /nopkl\.pt: no data\.pkl/],
        ['script.pt', buildZip([{ name: 'a/constants.pkl', data: bytes('\x80\x02).') }]), /script\.pt: a TorchScript archive/],
        ['bzip2.pt', buildZip([{ name: 'a/data.pkl', data: bytes('\x80\x02N.'), method: 12 }]), /compression method 12/],
        ['nostorage.pt', buildZip(members('tensors.pt').filter((m) => m.name !== 'tensors/data/0')), /nostorage\.pt: storage 0 is missing/],
      ];
      for (const [name, data, message] of cases) {
        const file = join(dir, name);
        if (data) writeFileSync(file, data);
        const err = await readTorchCheckpoint(file).then(() => undefined, (e: unknown) => e);
        expect(err, name).toBeInstanceOf(WeightsError);
        expect((err as Error).message, name).toMatch(message);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a checkpoint whose pickle calls os.system, naming the global', () => {
    const evil = buildZip([{ name: 'evil/data.pkl', data: bytes("cos\nsystem\n(S'echo hi'\ntR.") }]);
    expect(() => parseTorchCheckpoint(evil, 'evil.pt')).toThrow(/evil\.pt:evil\/data\.pkl: refusing pickle global os\.system/);
  });

  it('checks CRC-32 of storages when their data is read', () => {
    const data = new Uint8Array(fixture('tensors.pt'));
    const zip = new ZipReader(data, 'x');
    const entry = zip.entry('tensors/data/0')!;
    // The local header is 30 bytes plus name and extra; torch pads the extra so data starts 64-byte aligned.
    const view = new DataView(data.buffer, data.byteOffset);
    const start = entry.localHeaderOffset + 30 + view.getUint16(entry.localHeaderOffset + 26, true) + view.getUint16(entry.localHeaderOffset + 28, true);
    data[start] ^= 0x01;
    const ckpt = parseTorchCheckpoint(data, 'flipped.pt') as Map<string, PickleValue>;
    expect(() => (ckpt.get('half') as TorchTensor).data).toThrow(/flipped\.pt: member tensors\/data\/0 fails its CRC-32 check/);
  });
});

describe('readUltralyticsCheckpoint', () => {
  interface Expected {
    entry: string;
    className: string;
    stateDict: Record<string, TensorJson>;
    stride: number[];
    anchorsPx: number[][];
    epoch: number;
  }

  // v7.0 stores names as a dict {0: 'cat', 1: 'dog'}, v6.x as a list; both come back as a list.
  it.each(['tiny-yolov5-v7.pt', 'tiny-yolov5-v6.pt'])('reads %s like torch: state_dict names, order and values, names, stride, anchors', async (file) => {
    const want = json<Expected>(file.replace('.pt', '.json'));
    const ckpt = await readUltralyticsCheckpoint(fixturePath(file));
    expect(ckpt.entry).toBe(want.entry);
    expect(ckpt.className).toBe(want.className);
    expect([...ckpt.stateDict.keys()]).toEqual(Object.keys(want.stateDict));
    for (const [name, t] of ckpt.stateDict) {
      const w = want.stateDict[name]!;
      expect({ shape: t.shape, dtype: t.dtype }, name).toEqual({ shape: w.shape, dtype: w.dtype });
      expect(t.data).toBeInstanceOf(Float32Array);
      expect(Array.from(t.data), name).toEqual(w.values);
    }
    expect(ckpt.names).toEqual(['cat', 'dog']);
    expect(ckpt.nc).toBe(2);
    expect(ckpt.stride).toEqual(want.stride);
    expect(ckpt.anchorsPx).toEqual(want.anchorsPx);
    expect(ckpt.anchorsPx).toEqual([
      [10, 13, 16, 30, 33, 23],
      [30, 61, 62, 45, 59, 119],
      [116, 90, 156, 198, 373, 326],
    ]);
    expect(ckpt.epoch).toBe(want.epoch);
    expect(ckpt.date).toBe('2024-01-02T03:04:05.678901');
    expect(ckpt.dtype).toBe('float16');
    expect(ckpt.yaml).toMatchObject({ nc: 2, ch: 3, anchors: [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]] });
    expect((ckpt.yaml!.head as unknown[])[0]).toEqual([-1, 1, 'nn.Upsample', ['None', 2, 'nearest']]);
    expect(ckpt.stateDict.get('model.0.bn.num_batches_tracked')).toMatchObject({ shape: [], dtype: 'int64' });
  });

  it('decodes the numpy scalars, paths and optimizer state of an unstripped checkpoint', async () => {
    const ckpt = (await readTorchCheckpoint(fixturePath('tiny-yolov5-v7.pt'))) as Map<string, PickleValue>;
    expect(ckpt.get('best_fitness')).toBe(0.125);
    expect((ckpt.get('opt') as Map<string, PickleValue>).get('weights')).toBe('yolov5n.pt');
    const optimizer = ckpt.get('optimizer') as Map<string, PickleValue>;
    const state = optimizer.get('state') as Map<PickleValue, PickleValue>;
    expect([...state.keys()][0]).toBe(0);
    expect(isTorchTensor((state.get(0) as Map<string, PickleValue>).get('momentum_buffer'))).toBe(true);
  });

  it('says what is wrong with checkpoints that are not YOLOv5 detectors', () => {
    const pkl = (body: string): Uint8Array => buildZip([{ name: 'c/data.pkl', data: bytes(`\x80\x02${body}`) }]);
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['tensors.pt', fixture('tensors.pt'), /tensors\.pt: no 'model' or 'ema' module in the checkpoint \(keys: "half", /],
      ['sequential.pt', fixture('sequential.pt'), /holds a torch\.nn\.modules\.container\.Sequential, not an ultralytics checkpoint dict/],
      [
        'seq-model.pt',
        pkl('}X\x05\x00\x00\x00modelctorch.nn.modules.container\nSequential\n)\x81}bs.'),
        /seq-model\.pt: 'model' is a torch\.nn\.modules\.container\.Sequential, not a YOLOv5 detection model/,
      ],
      ['v8.pt', pkl('}X\x05\x00\x00\x00modelcultralytics.nn.tasks\nDetectionModel\n)\x81s.'), /refusing pickle global ultralytics\.nn\.tasks\.DetectionModel/],
      ['nomodel.pt', pkl('}X\x05\x00\x00\x00modelNs.'), /nomodel\.pt: no 'model' or 'ema' module/],
    ];
    for (const [name, data, message] of cases) {
      const err = thrown(() => parseUltralyticsCheckpoint(data, name));
      expect(err, name).toBeInstanceOf(WeightsError);
      expect((err as Error).message, name).toMatch(message);
    }
  });

  describe('damaged files give WeightsError and nothing else', () => {
    const original = fixture('tiny-yolov5-v7.pt');
    const n = original.length;

    it('truncated at any of many offsets', () => {
      const cuts = [0, 1, 2, 4, 21, 22, 30, 64, 100, 1000, n >> 2, n >> 1, n - 2000, n - 200, n - 100, n - 60, n - 23, n - 22, n - 21, n - 1];
      for (let c = 0; c < n; c += 997) cuts.push(c);
      for (const cut of cuts) {
        const err = thrown(() => parseUltralyticsCheckpoint(original.subarray(0, cut), 'cut.pt'));
        expect(err, `cut at ${cut}`).toBeInstanceOf(WeightsError);
        expect((err as Error).message).toMatch(/^cut\.pt: /);
      }
    });

    it.each(['tiny-yolov5-v7.pt', 'tensors-deflate.pt'])('with bytes flipped all over %s', (file) => {
      const data = fixture(file);
      const len = data.length;
      const zip = new ZipReader(data, file);
      const memberRanges = zip.names().map((name) => {
        const e = zip.entry(name)!;
        const view = new DataView(data.buffer, data.byteOffset);
        const start = e.localHeaderOffset + 30 + view.getUint16(e.localHeaderOffset + 26, true) + view.getUint16(e.localHeaderOffset + 28, true);
        return [start, start + e.compressedSize] as const;
      });
      // Every byte of the last 600 (central directory tail, ZIP64 records, end record), then a stride over the rest.
      const positions = new Set<number>();
      for (let p = Math.max(0, len - 600); p < len; p++) positions.add(p);
      for (let p = 0; p < len; p += 61) positions.add(p);
      let failures = 0;
      for (const p of positions) {
        const copy = new Uint8Array(data);
        copy[p] ^= 0xa5;
        const err = thrown(() => {
          const ckpt = parseTorchCheckpoint(copy, file);
          if (file.startsWith('tiny')) parseUltralyticsCheckpoint(copy, file);
          touchAll(ckpt);
        });
        if (err !== undefined) {
          failures++;
          expect(err, `byte ${p}`).toBeInstanceOf(WeightsError);
        }
        // A flip inside member data can only be caught by the CRC, so it must be.
        if (memberRanges.some(([a, b]) => p >= a && p < b)) expect(err, `byte ${p} in member data`).toBeInstanceOf(WeightsError);
      }
      expect(failures).toBeGreaterThan(positions.size / 4);
    });
  });

  // Real checkpoints written by ultralytics' own train.py (fixtures/ultralytics/make-fixtures.sh), when present.
  interface Reference {
    checkpoint: { keys: { epoch: number; ema: unknown; model: string; date: string } };
    model: { nc: number; names: string[] | Record<string, string>; stride: number[]; anchorsPixels: number[][][]; yaml: unknown };
    stateDict: { count: number; entries: Array<{ name: string; shape: number[]; dtype: string; sum: number }> };
  }
  const real = ['yolov5n-nc3-v7', 'tiny-nc2-v6.1'].filter((name) => existsSync(join(ULTRALYTICS, `${name}.pt`)) && existsSync(join(ULTRALYTICS, `${name}.reference.json`)));

  it.runIf(real.length > 0).each(real)('reads the real ultralytics checkpoint %s as torch does', async (name) => {
    const ref = JSON.parse(readFileSync(join(ULTRALYTICS, `${name}.reference.json`), 'utf8')) as Reference;
    const ckpt = await readUltralyticsCheckpoint(join(ULTRALYTICS, `${name}.pt`));
    expect(ckpt.entry).toBe(ref.checkpoint.keys.ema ? 'ema' : 'model');
    expect(ckpt.className).toBe(ref.checkpoint.keys.model.split(' ')[0]);
    expect(ckpt.stateDict.size).toBe(ref.stateDict.count);
    expect([...ckpt.stateDict.keys()]).toEqual(ref.stateDict.entries.map((e) => e.name));
    for (const e of ref.stateDict.entries) {
      const t = ckpt.stateDict.get(e.name)!;
      expect({ shape: t.shape, dtype: t.dtype }, e.name).toEqual({ shape: e.shape, dtype: e.dtype });
      let sum = 0;
      for (const v of t.data) sum += v;
      expect(Math.abs(sum - e.sum), e.name).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(e.sum)));
    }
    const names = Array.isArray(ref.model.names) ? ref.model.names : Object.values(ref.model.names);
    expect(ckpt.names).toEqual(names);
    expect(ckpt.nc).toBe(ref.model.nc);
    expect(ckpt.stride).toEqual(ref.model.stride);
    expect(ckpt.anchorsPx).toEqual(ref.model.anchorsPixels.map((level) => level.flat()));
    expect(ckpt.yaml).toEqual(ref.model.yaml);
    expect(ckpt.epoch).toBe(ref.checkpoint.keys.epoch);
    expect(ckpt.date).toBe(ref.checkpoint.keys.date);
  });
});
