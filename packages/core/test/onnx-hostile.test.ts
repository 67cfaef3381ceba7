import { describe, expect, it } from 'vitest';
import { decodeModel } from '../src/onnx/decode.js';
import { encodeModel } from '../src/onnx/encode.js';
import { inspectModel } from '../src/onnx/inspect.js';
import { OnnxError } from '../src/onnx/onnx-error.js';
import { tensorValues } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { walkModel } from '../src/onnx/walk.js';
import { ProtoWriter } from '../src/proto/writer.js';
import { convSiluModel, everythingModel } from './fixtures/onnx/build-models.js';
import { seededRandom as rng } from '../src/util/seeded-random.js';


/**
 * Decodes `bytes` and, when that works, uses the result the way callers do; returns 'ok' or the
 * OnnxError code. Anything else (RangeError, stack overflow, TypeError) propagates and fails the test.
 */
function probe(bytes: Uint8Array): string {
  let m: ModelProto;
  try {
    m = decodeModel(bytes);
  } catch (e) {
    if (e instanceof OnnxError) return e.code;
    throw e;
  }
  // A decoded model must encode again, and helpers on it fail only with OnnxError.
  encodeModel(m);
  try {
    inspectModel(m);
    walkModel(m, {
      tensor(t) {
        tensorValues(t);
      },
    });
  } catch (e) {
    if (!(e instanceof OnnxError)) throw e;
  }
  return 'ok';
}

/** One level of nesting: the bytes before and after a length-delimited field of `field`. */
interface Layer {
  field: number;
  before?: Uint8Array;
  after?: Uint8Array;
}

/**
 * `core` wrapped `times` times in the layers (innermost first), built in one pass: lengths are
 * worked out from the inside, then the bytes written from the outside.
 */
function nest(core: Uint8Array, layers: Layer[], times: number): Uint8Array {
  const heads: Uint8Array[] = [];
  const tails: Uint8Array[] = [];
  let len = core.length;
  for (let t = 0; t < times; t++) {
    for (const l of layers) {
      const head = new ProtoWriter().raw(l.before ?? new Uint8Array(0)).tag(l.field, 2).rawVarint(len).finish();
      const tail = l.after ?? new Uint8Array(0);
      heads.push(head);
      tails.push(tail);
      len += head.length + tail.length;
    }
  }
  const out = new Uint8Array(len);
  let at = 0;
  for (let i = heads.length - 1; i >= 0; i--) {
    out.set(heads[i], at);
    at += heads[i].length;
  }
  out.set(core, at);
  at += core.length;
  for (const tail of tails) {
    out.set(tail, at);
    at += tail.length;
  }
  return out;
}

describe('hostile ONNX input gives a model or an OnnxError, nothing else', () => {
  const models = [encodeModel(convSiluModel()), encodeModel(everythingModel())];

  it('every truncation of a real model', () => {
    const seen = new Set<string>();
    for (const bytes of models) {
      for (let n = 0; n < bytes.length; n++) seen.add(probe(bytes.subarray(0, n)));
    }
    // Cutting inside a message must be noticed (not every cut is: cutting between fields is valid).
    expect(seen.has('ONNX_MALFORMED')).toBe(true);
    expect(seen.has('ok')).toBe(true);
  });

  it('a few thousand seeded random corruptions', () => {
    const rand = rng(20260101);
    const codes = new Map<string, number>();
    for (let round = 0; round < 3000; round++) {
      const src = models[round % models.length];
      const bytes = src.slice();
      const edits = 1 + Math.floor(rand() * 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * bytes.length);
        const kind = rand();
        if (kind < 0.5) bytes[at] = Math.floor(rand() * 256);
        else if (kind < 0.75) bytes[at] ^= 1 << Math.floor(rand() * 8);
        else bytes[at] = rand() < 0.5 ? 0xff : 0x80;
      }
      const code = probe(bytes);
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect(codes.get('ONNX_MALFORMED') ?? 0).toBeGreaterThan(100);
    expect([...codes.keys()].every((c) => c === 'ok' || c.startsWith('ONNX_'))).toBe(true);
  });

  it('random bytes', () => {
    const rand = rng(7);
    for (let round = 0; round < 2000; round++) {
      const bytes = new Uint8Array(1 + Math.floor(rand() * 64));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
      expect(probe(bytes)).toMatch(/^(ok|ONNX_)/);
    }
  });

  it('a length of 2^31 fails before allocating', () => {
    // graph (field 7) claiming 2^31 bytes, followed by a few.
    const bytes = new Uint8Array([0x08, 0x08, 0x3a, 0x80, 0x80, 0x80, 0x80, 0x08, 1, 2, 3]);
    let err: unknown;
    try {
      decodeModel(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OnnxError);
    expect((err as OnnxError).code).toBe('ONNX_MALFORMED');
    expect((err as OnnxError).path).toBe('graph');
    expect((err as OnnxError).offset).toBe(3);
    expect((err as OnnxError).message).toMatch(/length 2147483648 runs past the end of the data \(3 bytes left\)/);
  });

  it('a lying length inside a packed tensor field fails before allocating', () => {
    const tensor = new ProtoWriter().int32(2, 7).raw(new Uint8Array([0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2])).finish();
    const graph = new ProtoWriter().fork(5).raw(tensor).ldelim().finish();
    const bytes = new ProtoWriter().fork(7).raw(graph).ldelim().finish();
    expect(() => decodeModel(bytes)).toThrow(/graph\.initializer\[0\]\.int64_data \(byte 7\): length 4294967295 runs past the end/);
  });

  it('a graph attribute nested 10 000 deep gives ONNX_TOO_DEEP, not a stack overflow', () => {
    // graph { node { op_type: "If"; attribute { name: "g"; g: <graph>; type: GRAPH } } }, 10 000 times.
    const level: Layer[] = [
      { field: 6, before: new ProtoWriter().string(1, 'g').finish(), after: new ProtoWriter().int32(20, 5).finish() },
      { field: 5, before: new ProtoWriter().string(4, 'If').finish() },
      { field: 1 },
    ];
    const graph = nest(new Uint8Array(0), level, 10_000);
    const bytes = nest(graph, [{ field: 7, before: new ProtoWriter().int64(1, 8).finish() }], 1);
    let err: unknown;
    try {
      decodeModel(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OnnxError);
    expect((err as OnnxError).code).toBe('ONNX_TOO_DEEP');
    expect((err as OnnxError).path).toMatch(/^graph\.node\[0\]\.attribute\[0\]\.g\.node\[0\]\.attribute\[0\]\.g\./);
    expect((err as OnnxError).message).toMatch(/nests too deeply .*deeper than maxDepth = 64/);
    // With the limit lifted, the JS stack runs out first: still an OnnxError, not a RangeError.
    expect(() => decodeModel(bytes, { maxDepth: 1_000_000 })).toThrow(expect.objectContaining({ code: 'ONNX_TOO_DEEP' }));
    // Nesting within the limit decodes.
    const shallow = nest(nest(new Uint8Array(0), level, 20), [{ field: 7 }], 1);
    let g = decodeModel(shallow).graph;
    let levels = 0;
    while (g !== undefined && g.node.length > 0) {
      g = g.node[0].attribute[0].g;
      levels++;
    }
    expect(levels).toBe(20);
    expect(() => decodeModel(shallow, { maxDepth: 30 })).toThrow(expect.objectContaining({ code: 'ONNX_TOO_DEEP' }));
  });

  it('a TypeProto sequence nested 100 000 deep gives ONNX_TOO_DEEP', () => {
    const tensorType = new ProtoWriter().fork(1).int32(1, 1).ldelim().finish(); // tensor_type { elem_type: FLOAT }
    // sequence_type (4) { elem_type (1) { ... } }
    const type = nest(tensorType, [{ field: 1 }, { field: 4 }], 100_000);
    const graph = new ProtoWriter().fork(11).string(1, 'x').fork(2).raw(type).ldelim().ldelim().finish();
    const bytes = new ProtoWriter().fork(7).raw(graph).ldelim().finish();
    expect(() => decodeModel(bytes)).toThrow(expect.objectContaining({ code: 'ONNX_TOO_DEEP' }));
  });

  it('an unknown group nested 100 000 deep is skipped without recursion', () => {
    const bytes = new Uint8Array(200_000);
    bytes.fill(0x4b, 0, 100_000).fill(0x4c, 100_000); // start/end group of field 9 (not a ModelProto field)
    const m = decodeModel(bytes);
    expect(m.unknownFields?.length).toBe(1);
  });
});
