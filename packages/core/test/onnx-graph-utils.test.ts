import { describe, expect, it } from 'vitest';
import {
  attrFloat,
  attrFloats,
  attrGraph,
  attrInt,
  attrInts,
  attrString,
  attrStrings,
  attrTensor,
  getAttr,
  initializerMap,
  irVersionForOpset,
  makeAttribute,
  makeModel,
  makeNode,
  makeValueInfo,
} from '../src/onnx/graph-utils.js';
import { OnnxError } from '../src/onnx/onnx-error.js';
import { makeTensor } from '../src/onnx/tensor.js';
import { AttributeType, DataType, type GraphProto } from '../src/onnx/types.js';

const emptyGraph = (name: string): GraphProto => ({ node: [], name, initializer: [], input: [], output: [], valueInfo: [] });

describe('makeAttribute', () => {
  it('types bare values by what they are', () => {
    expect(makeAttribute('axis', 1)).toStrictEqual({ name: 'axis', type: AttributeType.INT, i: 1n });
    expect(makeAttribute('axis', -1n)).toStrictEqual({ name: 'axis', type: AttributeType.INT, i: -1n });
    expect(makeAttribute('alpha', 0.2)).toStrictEqual({ name: 'alpha', type: AttributeType.FLOAT, f: 0.2 });
    expect(makeAttribute('pads', [1, 1, 0, 0])).toStrictEqual({ name: 'pads', type: AttributeType.INTS, ints: [1n, 1n, 0n, 0n] });
    expect(makeAttribute('scales', [1, 2.5])).toStrictEqual({ name: 'scales', type: AttributeType.FLOATS, floats: [1, 2.5] });
    expect(makeAttribute('mode', 'nearest').s).toEqual(new TextEncoder().encode('nearest'));
    expect(makeAttribute('mode', 'nearest').type).toBe(AttributeType.STRING);
    expect(makeAttribute('names', ['a', 'b']).type).toBe(AttributeType.STRINGS);
    const t = makeTensor('v', DataType.FLOAT, [1], [1]);
    expect(makeAttribute('value', t)).toStrictEqual({ name: 'value', type: AttributeType.TENSOR, t });
    const g = emptyGraph('body');
    expect(makeAttribute('body', g)).toStrictEqual({ name: 'body', type: AttributeType.GRAPH, g });
  });

  it('takes explicit wrappers where the bare value is ambiguous', () => {
    expect(makeAttribute('alpha', { float: 1 })).toStrictEqual({ name: 'alpha', type: AttributeType.FLOAT, f: 1 });
    expect(makeAttribute('scales', { floats: [1, 2] })).toStrictEqual({ name: 'scales', type: AttributeType.FLOATS, floats: [1, 2] });
    expect(makeAttribute('axes', { ints: [] })).toStrictEqual({ name: 'axes', type: AttributeType.INTS, ints: [] });
    expect(makeAttribute('k', { int: 2n ** 62n }).i).toBe(2n ** 62n);
    expect(makeAttribute('s', { strings: [] }).type).toBe(AttributeType.STRINGS);
    expect(makeAttribute('ts', { tensors: [] }).type).toBe(AttributeType.TENSORS);
    expect(makeAttribute('gs', { graphs: [emptyGraph('a')] }).graphs).toHaveLength(1);
  });

  it('refuses what it cannot type', () => {
    expect(() => makeAttribute('axes', [])).toThrow(/empty list has no type/);
    expect(() => makeAttribute('x', [1, 'a'] as unknown as number[])).toThrow(TypeError);
    expect(() => makeAttribute('x', 2 ** 53)).toThrow(RangeError);
    expect(() => makeAttribute('x', { int: 2n ** 63n })).toThrow(/outside int64/);
    expect(() => makeAttribute('x', { other: 1 } as never)).toThrow(TypeError);
  });
});

describe('makeNode, makeValueInfo, makeModel', () => {
  it('builds a node, leaving out undefined attributes', () => {
    const n = makeNode('Conv', ['x', 'w'], ['y'], { group: 1, dilations: undefined }, 'conv0');
    expect(n).toStrictEqual({
      input: ['x', 'w'],
      output: ['y'],
      name: 'conv0',
      opType: 'Conv',
      domain: '',
      attribute: [{ name: 'group', type: AttributeType.INT, i: 1n }],
    });
    expect(makeNode('QLinearConv', [], [], undefined, '', 'com.microsoft').domain).toBe('com.microsoft');
    expect(() => makeNode('', [], [])).toThrow(TypeError);
  });

  it('builds value infos with fixed, symbolic and unknown dimensions', () => {
    expect(makeValueInfo('images', DataType.FLOAT, ['batch', 3, null])).toStrictEqual({
      name: 'images',
      type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 3 }, {}] } } },
    });
    expect(makeValueInfo('any', DataType.UINT8).type).toStrictEqual({ tensorType: { elemType: 2 } });
    expect(() => makeValueInfo('bad', DataType.FLOAT, [-1])).toThrow(RangeError);
  });

  it('picks the IR version for the opset', () => {
    expect(irVersionForOpset(13)).toBe(7);
    expect(irVersionForOpset(17)).toBe(8);
    expect([7, 9, 10, 11, 12, 15, 19, 21, 23].map(irVersionForOpset)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(() => irVersionForOpset(99)).toThrow(/pass irVersion/);
    const m = makeModel({ graph: emptyGraph('g'), opset: 17, extraOpsets: { 'com.microsoft': 1 }, metadata: { stride: '32' } });
    expect(m.irVersion).toBe(8);
    expect(m.opsetImport).toEqual([{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }]);
    expect(m.metadataProps).toEqual([{ key: 'stride', value: '32' }]);
    expect(m.producerName).toBe('kd-edge');
    expect(makeModel({ graph: emptyGraph('g'), opset: 13, irVersion: 9 }).irVersion).toBe(9);
  });

  it('maps initializers by name', () => {
    const g = emptyGraph('g');
    g.initializer.push(makeTensor('w', DataType.FLOAT, [1], [1]), makeTensor('b', DataType.FLOAT, [1], [2]));
    expect([...initializerMap(g).keys()]).toEqual(['w', 'b']);
  });
});

describe('attribute readers', () => {
  const node = makeNode('Custom', ['x'], ['y'], {
    axis: -1,
    pads: [1, 2],
    alpha: { float: 0.5 },
    scales: { floats: [1.5] },
    mode: 'linear',
    names: ['a', 'b'],
    big: { int: 2n ** 60n },
    value: makeTensor('v', DataType.FLOAT, [1], [3]),
    body: emptyGraph('body'),
  }, 'n0');

  it('read values and defaults', () => {
    expect(getAttr(node, 'axis')?.i).toBe(-1n);
    expect(attrInt(node, 'axis')).toBe(-1);
    expect(attrInt(node, 'group', 1)).toBe(1);
    expect(attrInts(node, 'pads')).toEqual([1, 2]);
    expect(attrInts(node, 'strides', [1, 1])).toEqual([1, 1]);
    expect(attrFloat(node, 'alpha')).toBe(0.5);
    expect(attrFloats(node, 'scales')).toEqual([1.5]);
    expect(attrString(node, 'mode')).toBe('linear');
    expect(attrStrings(node, 'names')).toEqual(['a', 'b']);
    expect(attrTensor(node, 'value').name).toBe('v');
    expect(attrGraph(node, 'body').name).toBe('body');
  });

  it('name the node and attribute when absent, mistyped or unsafe', () => {
    expect(() => attrInt(node, 'group')).toThrow(new OnnxError('ONNX_BAD_ATTRIBUTE', "node 'n0' (Custom) has no attribute 'group'"));
    expect(() => attrFloat(node, 'axis')).toThrow(/attribute 'axis' is INT, expected FLOAT/);
    expect(() => attrInt(node, 'big')).toThrow(/1152921504606846976 is not a safe integer/);
    expect(() => attrTensor(node, 'missing')).toThrow(OnnxError);
  });

  it('infer the type of attributes written with type 0', () => {
    const old = makeNode('Old', [], ['y']);
    old.attribute.push({ name: 'k', type: 0, i: 3n });
    expect(attrInt(old, 'k')).toBe(3);
  });
});
