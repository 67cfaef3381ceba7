import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeModel } from '../src/onnx/decode.js';
import { makeModel, makeNode, makeValueInfo } from '../src/onnx/graph-utils.js';
import { formatInspection, inspectModel } from '../src/onnx/inspect.js';
import { makeTensor } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { convSiluModel, everythingModel } from './fixtures/onnx/build-models.js';

describe('inspectModel', () => {
  it('summarizes a small model', () => {
    const i = inspectModel(convSiluModel(17));
    expect(i).toStrictEqual({
      irVersion: 8,
      opsets: [{ domain: '', version: 17 }],
      producerName: 'kd-edge',
      producerVersion: '',
      graphName: 'conv_silu',
      inputs: [{ name: 'x', elemType: 'float32', shape: ['batch', 1, 4, 4] }],
      outputs: [{ name: 'y', elemType: 'float32', shape: ['batch', 3, 4, 4] }],
      nodeCount: 4,
      subgraphCount: 0,
      opHistogram: [
        { opType: 'Concat', count: 1 },
        { opType: 'Conv', count: 1 },
        { opType: 'Mul', count: 1 },
        { opType: 'Sigmoid', count: 1 },
      ],
      initializerCount: 2,
      parameterCount: 20,
      floatParameterCount: 20,
      initializerBytes: 80,
      metadata: { task: 'test' },
    });
  });

  it('sorts ops by count, counts subgraphs, separates float parameters, hides initializer inputs', () => {
    const graph = {
      name: 'g',
      node: [
        makeNode('Relu', ['x'], ['a']),
        makeNode('Relu', ['a'], ['b']),
        makeNode('Add', ['b', 'w'], ['c']),
        makeNode('Relu', ['c'], ['d']),
        makeNode('QuickGelu', ['d'], ['e'], undefined, '', 'com.microsoft'),
      ],
      initializer: [makeTensor('w', DataType.FLOAT16, [2, 2], [1, 2, 3, 4]), makeTensor('idx', DataType.INT64, [3], [0, 1, 2])],
      // IR 3 models list initializers among the inputs.
      input: [makeValueInfo('x', DataType.UINT8, [2, 2]), makeValueInfo('w', DataType.FLOAT16, [2, 2])],
      output: [makeValueInfo('e', DataType.FLOAT, undefined)],
      valueInfo: [],
    };
    const i = inspectModel(makeModel({ graph, opset: 13 }));
    expect(i.opHistogram).toEqual([
      { opType: 'Relu', count: 3 },
      { opType: 'Add', count: 1 },
      { opType: 'com.microsoft:QuickGelu', count: 1 },
    ]);
    expect(i.inputs).toEqual([{ name: 'x', elemType: 'uint8', shape: [2, 2] }]);
    expect(i.outputs).toEqual([{ name: 'e', elemType: 'float32' }]);
    expect(i.parameterCount).toBe(7);
    expect(i.floatParameterCount).toBe(4);
    expect(i.initializerBytes).toBe(4 * 2 + 3 * 8);

    const every = inspectModel(everythingModel());
    // g: body + 2 branches + 4 branches of those; graphs: g0, g1 + 2 branches; training info: 2.
    expect(every.subgraphCount).toBe(1 + 2 + 4 + 2 + 2 + 2);
    expect(every.opHistogram[0]).toEqual({ opType: 'Identity', count: 13 }); // 7 in body, 4 in graphs, 2 in training info
  });

  it('reads a model written by python onnx.helper', () => {
    const m = decodeModel(readFileSync(new URL('./fixtures/onnx/python-helper.onnx', import.meta.url)));
    const i = inspectModel(m);
    expect(i.producerName).toBe('onnx.helper');
    expect(i.subgraphCount).toBe(2);
    expect(i.nodeCount).toBe(6);
    expect(i.inputs).toEqual([{ name: 'x', elemType: 'float32', shape: ['N'] }]);
    expect(i.metadata).toEqual({ author: 'kd-edge tests', stride: '32' });
    expect(i.parameterCount).toBe(1 + 1 + 2 + 2 + 2);
    expect(i.floatParameterCount).toBe(1 + 2 + 2);
  });
});

describe('formatInspection', () => {
  it('prints a readable report', () => {
    const text = formatInspection(inspectModel(convSiluModel(13)));
    expect(text).toBe(
      [
        'ONNX model: IR version 7, opsets ai.onnx 13',
        'producer: kd-edge',
        "graph: 'conv_silu', 4 nodes, 2 initializers",
        'parameters: 20 (floating point 20), 80 B of initializers',
        'inputs:',
        '  x  float32 [batch, 1, 4, 4]',
        'outputs:',
        '  y  float32 [batch, 3, 4, 4]',
        'ops:',
        '  Concat   1',
        '  Conv     1',
        '  Mul      1',
        '  Sigmoid  1',
        'metadata:',
        '  task: test',
      ].join('\n'),
    );
  });

  it('formats large numbers, unknown dimensions and long metadata', () => {
    const i = inspectModel(convSiluModel());
    i.parameterCount = 7_225_885;
    i.initializerBytes = 28_903_540;
    i.inputs = [{ name: 'images', elemType: 'float32', shape: [null, 3, 640, 640] }];
    i.metadata = { names: `{${Array.from({ length: 80 }, (_, k) => `${k}: 'class${k}'`).join(', ')}}` };
    const text = formatInspection(i);
    expect(text).toContain('parameters: 7,225,885 (floating point 20), 27.6 MiB of initializers');
    expect(text).toContain('  images  float32 [?, 3, 640, 640]');
    const names = text.split('\n').find((l) => l.startsWith('  names: '))!;
    expect(names.length).toBe('  names: '.length + 100);
    expect(names.endsWith('…')).toBe(true);
  });
});
