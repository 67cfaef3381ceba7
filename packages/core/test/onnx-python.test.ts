/**
 * Cross-checks with the reference implementation, python's `onnx` package (Debian python3-onnx;
 * CI installs it). Skipped where no python with `onnx` is found.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeModel } from '../src/onnx/decode.js';
import { encodeModel } from '../src/onnx/encode.js';
import { attrFloats, attrGraph, attrInt, attrTensor } from '../src/onnx/graph-utils.js';
import { float16BitsToFloat32 } from '../src/onnx/float16.js';
import { tensorValues } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';
import { convSiluModel } from './fixtures/onnx/build-models.js';

const python = ['python3', '/usr/bin/python3'].find(
  (exe) => spawnSync(exe, ['-c', 'import onnx'], { stdio: 'ignore', timeout: 60_000 }).status === 0,
);
const hasPythonOnnx = python !== undefined;

const fixture = (name: string): string => new URL(`./fixtures/onnx/${name}`, import.meta.url).pathname;

// Loads a model, runs the full checker, and prints what it holds as JSON (numbers as strings, so
// int64 values survive).
const DUMP = `
import json, sys, onnx
from onnx import helper, numpy_helper
def tensor(t):
    return {'name': t.name, 'dims': list(t.dims), 'type': t.data_type,
            'values': [str(x) for x in numpy_helper.to_array(t).flatten().tolist()]}
def attr(a):
    v = helper.get_attribute_value(a)
    if isinstance(v, onnx.GraphProto): return {'graph': graph(v)}
    if isinstance(v, onnx.TensorProto): return {'tensor': tensor(v)}
    if isinstance(v, bytes): return v.decode()
    if isinstance(v, list): return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v
def graph(g):
    return {'name': g.name,
            'nodes': [{'op': n.op_type, 'in': list(n.input), 'out': list(n.output),
                       'attrs': {a.name: attr(a) for a in n.attribute}} for n in g.node],
            'inits': [tensor(t) for t in g.initializer],
            'inputs': [[i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]] for i in g.input]}
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
print(json.dumps({'ir': m.ir_version, 'opsets': [[o.domain, o.version] for o in m.opset_import],
                  'producer': m.producer_name, 'graph': graph(m.graph),
                  'meta': {p.key: p.value for p in m.metadata_props}}))
`;

interface Dump {
  ir: number;
  opsets: [string, number][];
  producer: string;
  graph: {
    name: string;
    nodes: { op: string; in: string[]; out: string[]; attrs: Record<string, unknown> }[];
    inits: { name: string; dims: number[]; type: number; values: string[] }[];
    inputs: [string, (string | number)[]][];
  };
  meta: Record<string, string>;
}

function dump(path: string): Dump {
  return JSON.parse(execFileSync(python!, ['-c', DUMP, path], { encoding: 'utf8', timeout: 60_000 })) as Dump;
}

const dir = mkdtempSync(join(tmpdir(), 'kd-onnx-py-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('python onnx reads what we write', () => {
  it.skipIf(!hasPythonOnnx)('passes check_model(full_check=True) with the same ops and initializer values', () => {
    const m = convSiluModel(17);
    const path = join(dir, 'ours.onnx');
    writeFileSync(path, encodeModel(m));
    const d = dump(path);
    expect(d.ir).toBe(8);
    expect(d.opsets).toEqual([['', 17]]);
    expect(d.producer).toBe('kd-edge');
    expect(d.graph.nodes.map((n) => n.op)).toEqual(['Conv', 'Sigmoid', 'Mul', 'Concat']);
    expect(d.graph.nodes[0].attrs).toEqual({ kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    expect(d.graph.nodes[3].attrs).toEqual({ axis: 1 });
    expect(d.graph.inputs).toEqual([['x', ['batch', 1, 4, 4]]]);
    expect(d.meta).toEqual({ task: 'test' });
    for (const [i, t] of m.graph!.initializer.entries()) {
      expect(d.graph.inits[i].name).toBe(t.name);
      expect(d.graph.inits[i].dims).toEqual(t.dims);
      expect(d.graph.inits[i].values.map(Number)).toEqual([...(tensorValues(t) as Float32Array)]);
    }
  });

  it.skipIf(!hasPythonOnnx)('sees a python-written model re-encoded by us exactly as the original', () => {
    // Decoding the proto2, unpacked encoding and writing it back packed must not change its meaning.
    const original = fixture('python-helper.onnx');
    const ours = join(dir, 'reencoded.onnx');
    writeFileSync(ours, encodeModel(decodeModel(readFileSync(original))));
    expect(dump(ours)).toEqual(dump(original));
  });
});

describe('we read what python onnx.helper writes', () => {
  it.skipIf(!hasPythonOnnx)('decodes a model generated now by onnx.helper', () => {
    const path = join(dir, 'python.onnx');
    execFileSync(python!, [fixture('python-helper.py'), path], { timeout: 60_000 });
    checkPythonModel(readFileSync(path));
  });

  it('decodes the committed onnx.helper fixture (no python needed)', () => {
    checkPythonModel(readFileSync(fixture('python-helper.onnx')));
  });
});

function checkPythonModel(bytes: Uint8Array): void {
  const m = decodeModel(bytes);
  expect(m.irVersion).toBeGreaterThanOrEqual(7);
  expect(m.producerName).toBe('onnx.helper');
  expect(m.opsetImport).toEqual([{ domain: '', version: 13 }]);
  expect(Object.fromEntries(m.metadataProps.map((e) => [e.key, e.value]))).toEqual({ author: 'kd-edge tests', stride: '32' });
  const g = m.graph!;
  expect(g.name).toBe('python_graph');
  expect(g.node.map((n) => n.opType)).toEqual(['ReduceSum', 'Greater', 'If', 'Add']);
  expect(g.node.map((n) => n.name)).toEqual(['sum', 'gt', 'if', 'add']);
  expect(attrInt(g.node[0], 'keepdims')).toBe(0);
  expect(g.node[3].docString).toBe('adds the bias');
  const thenBranch = attrGraph(g.node[2], 'then_branch');
  expect(thenBranch.name).toBe('then_branch');
  expect([...(tensorValues(attrTensor(thenBranch.node[0], 'value')) as Float32Array)]).toEqual([1, 2]);
  expect(attrFloats(attrGraph(g.node[2], 'else_branch').node[0], 'value_floats')).toEqual([3, -4.5]);
  const init = new Map(g.initializer.map((t) => [t.name, t]));
  // helper.make_tensor writes the typed fields (float_data, int64_data, int32_data), not raw_data.
  expect(init.get('bias')!.floatData).toBeDefined();
  expect([...(tensorValues(init.get('bias')!) as Float32Array)]).toEqual([0.5, -0.25]);
  expect([...(tensorValues(init.get('axes')!) as BigInt64Array)]).toEqual([0n]);
  expect(init.get('zero')!.dims).toEqual([]);
  expect([...(tensorValues(init.get('big')!) as BigInt64Array)]).toEqual([-(2n ** 63n), 2n ** 63n - 1n]);
  const half = init.get('half')!;
  expect(half.dataType).toBe(DataType.FLOAT16);
  expect([...float16BitsToFloat32(tensorValues(half) as Uint16Array)]).toEqual([1, -2]);
  expect(g.input[0].type!.tensorType!.shape!.dim).toEqual([{ dimParam: 'N' }]);
}
