import { describe, expect, it } from 'vitest';
import { decodeGraph, decodeModel, decodeTensor } from '../src/onnx/decode.js';
import { encodeGraph, encodeModel, encodeTensor } from '../src/onnx/encode.js';
import { OnnxError } from '../src/onnx/onnx-error.js';
import { DataType, type ModelProto } from '../src/onnx/types.js';
import { ProtoWriter } from '../src/proto/writer.js';
import { convSiluModel, everythingModel, unknownField } from './fixtures/onnx/build-models.js';

function onnxError(fn: () => unknown): OnnxError {
  try {
    fn();
  } catch (e) {
    if (e instanceof OnnxError) return e;
    throw e;
  }
  throw new Error('expected an OnnxError');
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

describe('ONNX encode/decode round trips', () => {
  it('decode(encode(m)) equals m for a model using every message and field', () => {
    const m = everythingModel();
    const bytes = encodeModel(m);
    expect(decodeModel(bytes)).toStrictEqual(m);
  });

  it('encode(decode(bytes)) reproduces our bytes exactly', () => {
    for (const m of [everythingModel(), convSiluModel(13), convSiluModel(17)]) {
      const bytes = encodeModel(m);
      expect(sameBytes(encodeModel(decodeModel(bytes)), bytes)).toBe(true);
    }
  });

  it('keeps int64 extremes, presence of zero values and unknown fields', () => {
    const m = decodeModel(encodeModel(everythingModel()));
    const node = m.graph!.node[0];
    const attr = (name: string) => node.attribute.find((a) => a.name === name)!;
    expect(attr('i').i).toBe(-(2n ** 63n));
    expect(attr('ints').ints).toEqual([-(2n ** 63n), -1n, 0n, 2n ** 63n - 1n]);
    expect(attr('zero').i).toBe(0n);
    expect(m.graph!.initializer.find((t) => t.name === 'uint64')!.uint64Data![1]).toBe(2n ** 64n - 1n);
    expect(m.modelVersion).toBe(Number.MAX_SAFE_INTEGER);
    expect(node.unknownFields).toEqual([unknownField(50, 12345), unknownField(51, 'node extension')]);
    expect(m.unknownFields).toEqual([unknownField(1000, 'model extension'), unknownField(1001, -5)]);
    const dims = m.graph!.valueInfo[0].type!.tensorType!.shape!.dim;
    expect(dims[0]).toStrictEqual({ dimValue: 0 });
    expect(dims[2]).toStrictEqual({});
  });

  it('returns raw_data as a view into the input, not a copy', () => {
    const bytes = encodeModel(convSiluModel());
    const w = decodeModel(bytes).graph!.initializer[0];
    expect(w.rawData!.buffer).toBe(bytes.buffer);
    expect(w.rawData!.length).toBe(18 * 4);
  });

  it('decodes from a Buffer into plain Uint8Array views', () => {
    const bytes = Buffer.from(encodeModel(convSiluModel()));
    const w = decodeModel(bytes).graph!.initializer[0];
    expect(w.rawData!.constructor).toBe(Uint8Array);
  });

  it('encodes and decodes graphs and tensors on their own', () => {
    const g = everythingModel().graph!;
    expect(decodeGraph(encodeGraph(g))).toStrictEqual(g);
    const t = g.initializer[4];
    expect(decodeTensor(encodeTensor(t))).toStrictEqual(t);
  });

  it('writes repeated numbers packed and skips proto3 defaults', () => {
    const t = { dims: [2, 3], dataType: DataType.FLOAT, name: '' };
    // dims packed (0a 02 02 03), data_type 1; no name, no raw_data.
    expect(Buffer.from(encodeTensor(t)).toString('hex')).toBe('0a0202031001');
    const empty: ModelProto = {
      irVersion: 0,
      opsetImport: [],
      producerName: '',
      producerVersion: '',
      domain: '',
      modelVersion: 0,
      docString: '',
      metadataProps: [],
    };
    expect(encodeModel(empty).length).toBe(0);
    expect(decodeModel(new Uint8Array(0))).toStrictEqual(empty);
  });
});

describe('ONNX decoding follows protobuf parsing rules', () => {
  it('accepts unpacked repeated scalars, and packed and unpacked mixed in wire order', () => {
    const w = new ProtoWriter()
      .int64(1, 2) // dims, unpacked
      .packedVarint(1, [3])
      .int64(1, -1)
      .int32(2, DataType.INT64)
      .int64(7, -(2n ** 63n)) // int64_data, unpacked
      .packedVarint(7, [1n, 2n])
      .int64(7, 3n)
      .float(4, 1.5) // float_data, unpacked
      .packedFloat(4, [2.5])
      .int64(5, -7) // int32_data, unpacked
      .fixed64(10, 0n) // double_data, unpacked (as bits: 0.0)
      .packedDouble(10, [2])
      .int64(11, 2n ** 64n - 1n); // uint64_data, unpacked
    const t = decodeTensor(w.finish());
    expect(t.dims).toEqual([2, 3, -1]);
    expect([...t.int64Data!]).toEqual([-(2n ** 63n), 1n, 2n, 3n]);
    expect([...t.floatData!]).toEqual([1.5, 2.5]);
    expect([...t.int32Data!]).toEqual([-7]);
    expect([...t.doubleData!]).toEqual([0, 2]);
    expect([...t.uint64Data!]).toEqual([2n ** 64n - 1n]);
  });

  it('accepts unpacked attribute floats and ints', () => {
    const w = new ProtoWriter().string(1, 'pads').int64(8, 1).int64(8, -2).float(7, 0.5).int32(20, 7);
    const g = decodeGraph(new ProtoWriter().fork(1).string(4, 'Pad').fork(5).raw(w.finish()).ldelim().ldelim().finish());
    expect(g.node[0].attribute[0]).toStrictEqual({ name: 'pads', type: 7, ints: [1n, -2n], floats: [0.5] });
  });

  it('lets the last value of a singular field win and merges repeated singular messages', () => {
    const bytes = new ProtoWriter()
      .int64(1, 7)
      .fork(7).string(2, 'first').fork(1).string(4, 'Relu').ldelim().ldelim()
      .int64(1, 8)
      .fork(7).string(2, 'second').fork(1).string(4, 'Sigmoid').ldelim().ldelim()
      .finish();
    const m = decodeModel(bytes);
    expect(m.irVersion).toBe(8);
    // protobuf merges a repeated singular message: scalars replaced, lists appended.
    expect(m.graph!.name).toBe('second');
    expect(m.graph!.node.map((n) => n.opType)).toEqual(['Relu', 'Sigmoid']);
  });

  it('keeps the last member of a oneof', () => {
    const dim = (w: ProtoWriter): Uint8Array => new ProtoWriter().fork(1).raw(w.finish()).ldelim().finish();
    const shape = decodeGraph(
      new ProtoWriter()
        .fork(11)
        .fork(2)
        .fork(1)
        .fork(2)
        .raw(dim(new ProtoWriter().int64(1, 5).string(2, 'N')))
        .raw(dim(new ProtoWriter().string(2, 'N').int64(1, 5)))
        .ldelim()
        .ldelim()
        .ldelim()
        .ldelim()
        .finish(),
    ).input[0].type!.tensorType!.shape!;
    expect(shape.dim).toStrictEqual([{ dimParam: 'N' }, { dimValue: 5 }]);
  });

  it('keeps a known field with an unexpected wire type as an unknown field', () => {
    // ir_version written as a string: protobuf parsers treat it as unknown, and so do we.
    const bytes = new ProtoWriter().string(1, 'eight').int64(1, 8).finish();
    const m = decodeModel(bytes);
    expect(m.irVersion).toBe(8);
    expect(m.unknownFields).toEqual([new ProtoWriter().string(1, 'eight').finish()]);
  });

  it('refuses sizes and versions past Number.MAX_SAFE_INTEGER, naming the field', () => {
    const e = onnxError(() => decodeModel(new ProtoWriter().int64(1, 2n ** 60n).finish()));
    expect(e.code).toBe('ONNX_MALFORMED');
    expect(e.path).toBe('ir_version');
    expect(e.offset).toBe(1);
    expect(e.message).toMatch(/ir_version \(byte 1\): value 1152921504606846976 is not a safe integer/);
  });

  it('names the message path and byte offset of malformed data', () => {
    // graph.node[1].attribute[0].t.dims is a packed block that ends inside a varint.
    const tensor = new ProtoWriter().raw(new Uint8Array([0x0a, 0x02, 0x05, 0x80])).finish();
    const attr = new ProtoWriter().string(1, 'value').fork(5).raw(tensor).ldelim().int32(20, 4).finish();
    const node1 = new ProtoWriter().string(4, 'Constant').fork(5).raw(attr).ldelim().finish();
    const node0 = new ProtoWriter().string(4, 'Relu').finish();
    const graph = new ProtoWriter().fork(1).raw(node0).ldelim().fork(1).raw(node1).ldelim().finish();
    const bytes = new ProtoWriter().int64(1, 8).fork(7).raw(graph).ldelim().finish();
    const e = onnxError(() => decodeModel(bytes));
    expect(e.code).toBe('ONNX_MALFORMED');
    expect(e.path).toBe('graph.node[1].attribute[0].t.dims');
    const at = Buffer.from(bytes).indexOf(Buffer.from([0x0a, 0x02, 0x05, 0x80]));
    expect(e.offset).toBe(at + 1);
    expect(e.message).toBe(
      `malformed ONNX model at graph.node[1].attribute[0].t.dims (byte ${at + 1}): packed varint block ends inside a varint`,
    );
  });

  it('rejects a bad maxDepth and non-bytes', () => {
    expect(() => decodeModel(new Uint8Array(0), { maxDepth: 0 })).toThrow(RangeError);
    expect(() => decodeModel('onnx' as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe('ONNX encoding checks its input', () => {
  it('names the path of a value that does not fit', () => {
    const m = convSiluModel();
    m.graph!.initializer[1].dims = [2 ** 53];
    expect(() => encodeModel(m)).toThrow(/^model\.graph\.initializer\[1\]: varint value must be a safe integer/);
    const m2 = convSiluModel();
    m2.graph!.input[0].type!.tensorType!.shape!.dim[0] = { dimValue: 1, dimParam: 'N' };
    expect(() => encodeModel(m2)).toThrow(TypeError);
    expect(() => encodeModel(m2)).toThrow(/model\.graph\.input\[0\]\.type\.tensor_type\.shape\.dim\[0\]: .*oneof/);
    expect(() => encodeModel(null as unknown as ModelProto)).toThrow(TypeError);
  });
});
