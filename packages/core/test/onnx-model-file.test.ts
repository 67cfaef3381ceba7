import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeModel } from '../src/onnx/encode.js';
import { findExternalData, readOnnxFile, writeOnnxFile } from '../src/onnx/model-file.js';
import { OnnxError } from '../src/onnx/onnx-error.js';
import { DataType, type ModelProto } from '../src/onnx/types.js';
import { ProtoWriter } from '../src/proto/writer.js';
import { convSiluModel } from './fixtures/onnx/build-models.js';

const dir = mkdtempSync(join(tmpdir(), 'kd-onnx-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function onnxError(p: Promise<unknown>): Promise<OnnxError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof OnnxError) return e;
    throw e;
  }
  throw new Error('expected an OnnxError');
}

function withExternal(): ModelProto {
  const m = convSiluModel();
  m.graph!.initializer[0] = {
    name: 'w',
    dims: [2, 1, 3, 3],
    dataType: DataType.FLOAT,
    dataLocation: 1,
    externalData: [{ key: 'location', value: 'model.onnx.data' }, { key: 'offset', value: '0' }],
  };
  return m;
}

describe('writeOnnxFile / readOnnxFile', () => {
  it('writes a model and reads it back', async () => {
    const path = join(dir, 'model.onnx');
    const m = convSiluModel();
    const n = await writeOnnxFile(path, m);
    const bytes = readFileSync(path);
    expect(n).toBe(bytes.length);
    expect(Buffer.compare(bytes, Buffer.from(encodeModel(m)))).toBe(0);
    expect(await readOnnxFile(path)).toStrictEqual(m);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('replaces an existing file whole', async () => {
    const path = join(dir, 'replace.onnx');
    writeFileSync(path, 'old contents that are longer than nothing');
    const m = convSiluModel(17);
    await writeOnnxFile(path, m);
    expect((await readOnnxFile(path)).irVersion).toBe(8);
  });

  it('leaves the target untouched when encoding fails', async () => {
    const path = join(dir, 'keep.onnx');
    writeFileSync(path, 'previous model');
    const bad = convSiluModel();
    bad.irVersion = 2 ** 60;
    await expect(writeOnnxFile(path, bad)).rejects.toThrow(RangeError);
    expect(readFileSync(path, 'utf8')).toBe('previous model');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('fails with ONNX_WRITE_FAILED, leaving no temporary file, when the folder is missing or read-only', async () => {
    const e = await onnxError(writeOnnxFile(join(dir, 'missing', 'model.onnx'), convSiluModel()));
    expect(e.code).toBe('ONNX_WRITE_FAILED');
    expect(e.message).toMatch(/missing\/model\.onnx \(creating the temporary file\)/);
    if (process.getuid?.() !== 0) {
      // Root ignores folder permissions, so this part runs only as an ordinary user.
      const ro = join(dir, 'ro');
      mkdirSync(ro);
      chmodSync(ro, 0o500);
      const e2 = await onnxError(writeOnnxFile(join(ro, 'model.onnx'), convSiluModel()));
      expect(e2.code).toBe('ONNX_WRITE_FAILED');
      expect(readdirSync(ro)).toEqual([]);
      chmodSync(ro, 0o700);
    }
  });

  it('rejects a bad path argument', async () => {
    await expect(readOnnxFile('')).rejects.toThrow(TypeError);
    await expect(writeOnnxFile('', convSiluModel())).rejects.toThrow(TypeError);
  });
});

describe('readOnnxFile errors', () => {
  it('names a missing file', async () => {
    const e = await onnxError(readOnnxFile(join(dir, 'nope.onnx')));
    expect(e.code).toBe('ONNX_FILE_NOT_FOUND');
    expect(e.message).toContain('nope.onnx');
  });

  it('names an empty file', async () => {
    const path = join(dir, 'empty.onnx');
    writeFileSync(path, '');
    expect((await onnxError(readOnnxFile(path))).code).toBe('ONNX_FILE_EMPTY');
  });

  it('reports a folder as unreadable', async () => {
    expect((await onnxError(readOnnxFile(dir))).code).toBe('ONNX_READ_FAILED');
  });

  it('recognizes files that are not ONNX', async () => {
    const zip = join(dir, 'best.pt');
    writeFileSync(zip, Buffer.from('PK\u0003\u0004\u0014\u0000\u0000\u0000\u0008\u0000archive/data.pkl'));
    const e = await onnxError(readOnnxFile(zip));
    expect(e.code === 'ONNX_MALFORMED' || e.code === 'ONNX_NOT_ONNX').toBe(true);
    expect(e.message).toMatch(/zip archive \(a PyTorch \.pt checkpoint\?\)/);
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'hello world, this is not a model\n');
    const e2 = await onnxError(readOnnxFile(text));
    expect(['ONNX_MALFORMED', 'ONNX_NOT_ONNX']).toContain(e2.code);
    expect(e2.message).toContain('notes.txt');
    const nothing = join(dir, 'unknown-only.bin');
    writeFileSync(nothing, new ProtoWriter().string(9, 'not a model field').finish());
    const e3 = await onnxError(readOnnxFile(nothing));
    expect(e3.code).toBe('ONNX_NOT_ONNX');
    expect(e3.message).toMatch(/is not an ONNX model: it has no IR version and no graph/);
  });

  it('names a model without a graph', async () => {
    const path = join(dir, 'nograph.onnx');
    const m = convSiluModel();
    delete m.graph;
    writeFileSync(path, encodeModel(m));
    const e = await onnxError(readOnnxFile(path));
    expect(e.code).toBe('ONNX_NO_GRAPH');
    expect(e.message).toMatch(/IR version 7\) has no graph/);
  });

  it('passes on decoding errors with the file name, path and offset', async () => {
    const path = join(dir, 'truncated.onnx');
    const bytes = encodeModel(convSiluModel());
    writeFileSync(path, bytes.subarray(0, bytes.length >> 1)); // cut inside the graph
    const e = await onnxError(readOnnxFile(path));
    expect(e.code).toBe('ONNX_MALFORMED');
    expect(e.message.startsWith(`${path}: malformed ONNX model at graph`)).toBe(true);
    expect(e.path).toMatch(/^graph/);
    expect(typeof e.offset).toBe('number');
  });

  it('refuses external data, listing the tensors, unless allowed', async () => {
    const path = join(dir, 'external.onnx');
    await writeOnnxFile(path, withExternal());
    const e = await onnxError(readOnnxFile(path));
    expect(e.code).toBe('ONNX_EXTERNAL_DATA');
    expect(e.message).toMatch(/keeps 1 tensor\(s\) in external data files, which kd-edge does not support: 'w' → model\.onnx\.data/);
    const m = await readOnnxFile(path, { allowExternalData: true });
    expect(findExternalData(m)).toEqual([{ name: 'w', path: 'graph.initializer[0]', location: 'model.onnx.data' }]);
  });
});
