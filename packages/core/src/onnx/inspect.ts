import { dataTypeName, isFloatDataType } from './data-type.js';
import { tensorByteSize, tensorElementCount } from './tensor.js';
import type { ModelProto, TypeProto, ValueInfoProto } from './types.js';
import { walkModel } from './walk.js';

/** A graph input or output as {@link inspectModel} reports it. */
export interface OnnxIoInfo {
  name: string;
  /** Element type name ('float32', 'uint8', ...), or the kind for non-tensor types ('sequence', 'map', ...). */
  elemType: string;
  /** Sizes and symbolic names; null for an unknown dimension; undefined for unknown rank. */
  shape?: (number | string | null)[];
}

/** A summary of an ONNX model, from {@link inspectModel}. */
export interface OnnxInspection {
  irVersion: number;
  /** Operator sets; domain '' is shown as 'ai.onnx'. */
  opsets: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  graphName: string;
  /** Graph inputs that are not initializers (IR < 4 models list weights as inputs too). */
  inputs: OnnxIoInfo[];
  outputs: OnnxIoInfo[];
  /** Nodes in the main graph, its subgraphs and the model's functions. */
  nodeCount: number;
  /** Subgraphs held in node attributes (If, Loop, Scan bodies). */
  subgraphCount: number;
  /** Node count per op type (`domain:op` outside ai.onnx), most frequent first, ties by name. */
  opHistogram: { opType: string; count: number }[];
  /** Initializers of all graphs, sparse ones included. */
  initializerCount: number;
  /** Elements of all initializers. */
  parameterCount: number;
  /** Elements of floating-point initializers (float32/16/64, bfloat16, float8): the trainable weights. */
  floatParameterCount: number;
  /** Bytes the initializers' values take (elements × element size). */
  initializerBytes: number;
  /** metadata_props as a record (a repeated key keeps its last value). */
  metadata: Record<string, string>;
}

function typeInfo(t: TypeProto | undefined): Pick<OnnxIoInfo, 'elemType' | 'shape'> {
  const tensor = t?.tensorType ?? t?.sparseTensorType;
  if (tensor !== undefined) {
    const shape = tensor.shape?.dim.map((d) => d.dimValue ?? (d.dimParam ? d.dimParam : null));
    return shape === undefined ? { elemType: dataTypeName(tensor.elemType) } : { elemType: dataTypeName(tensor.elemType), shape };
  }
  if (t?.sequenceType) return { elemType: 'sequence' };
  if (t?.mapType) return { elemType: 'map' };
  if (t?.optionalType) return { elemType: 'optional' };
  if (t?.opaqueType) return { elemType: 'opaque' };
  return { elemType: 'unknown' };
}

function ioInfo(v: ValueInfoProto): OnnxIoInfo {
  return { name: v.name, ...typeInfo(v.type) };
}

/**
 * Summarizes a model: versions, inputs and outputs with shapes, op histogram, parameter counts and
 * metadata. Subgraphs and functions count towards the node and parameter figures.
 * @example console.log(formatInspection(inspectModel(await readOnnxFile('best.onnx'))));
 */
export function inspectModel(model: ModelProto): OnnxInspection {
  const graph = model.graph;
  const ops = new Map<string, number>();
  let nodeCount = 0;
  let subgraphCount = 0;
  let initializerCount = 0;
  let parameterCount = 0;
  let floatParameterCount = 0;
  let initializerBytes = 0;
  walkModel(model, {
    graph(_g, _path, depth) {
      if (depth > 0) subgraphCount++;
    },
    node(n) {
      nodeCount++;
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}:${n.opType}` : n.opType;
      ops.set(key, (ops.get(key) ?? 0) + 1);
    },
    tensor(t, _path, role) {
      // Only weights: initializers and the values of sparse initializers, not attribute constants.
      if (role !== 'initializer' && role !== 'sparse-values') return;
      initializerCount++;
      const n = tensorElementCount(t);
      parameterCount += n;
      if (isFloatDataType(t.dataType)) floatParameterCount += n;
      initializerBytes += tensorByteSize(t);
    },
  });
  const initializerNames = new Set(graph?.initializer.map((t) => t.name) ?? []);
  const metadata: Record<string, string> = {};
  for (const e of model.metadataProps) metadata[e.key] = e.value;
  return {
    irVersion: model.irVersion,
    opsets: model.opsetImport.map((o) => ({ domain: o.domain, version: o.version })),
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    graphName: graph?.name ?? '',
    inputs: (graph?.input ?? []).filter((v) => !initializerNames.has(v.name)).map(ioInfo),
    outputs: (graph?.output ?? []).map(ioInfo),
    nodeCount,
    subgraphCount,
    opHistogram: [...ops]
      .map(([opType, count]) => ({ opType, count }))
      .sort((a, b) => b.count - a.count || (a.opType < b.opType ? -1 : a.opType > b.opType ? 1 : 0)),
    initializerCount,
    parameterCount,
    floatParameterCount,
    initializerBytes,
    metadata,
  };
}

const int = (n: number): string => n.toLocaleString('en-US');

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

function shapeText(io: OnnxIoInfo): string {
  if (io.shape === undefined) return io.elemType;
  return `${io.elemType} [${io.shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/**
 * A readable multi-line report of an {@link OnnxInspection}: header, inputs, outputs, the op
 * histogram and metadata (long values shortened to one line).
 */
export function formatInspection(i: OnnxInspection): string {
  const lines: string[] = [];
  const opsets = i.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ') || 'none';
  lines.push(`ONNX model: IR version ${i.irVersion}, opsets ${opsets}`);
  const producer = [i.producerName, i.producerVersion].filter(Boolean).join(' ');
  if (producer) lines.push(`producer: ${producer}`);
  const sub = i.subgraphCount > 0 ? ` (${i.subgraphCount} subgraphs)` : '';
  lines.push(`graph: ${i.graphName ? `'${i.graphName}'` : '(unnamed)'}, ${int(i.nodeCount)} nodes${sub}, ${int(i.initializerCount)} initializers`);
  lines.push(
    `parameters: ${int(i.parameterCount)} (floating point ${int(i.floatParameterCount)}), ` +
      `${bytes(i.initializerBytes)} of initializers`,
  );
  const io = (title: string, list: OnnxIoInfo[]): void => {
    lines.push(`${title}:`);
    if (list.length === 0) lines.push('  (none)');
    const width = Math.max(0, ...list.map((x) => x.name.length));
    for (const x of list) lines.push(`  ${x.name.padEnd(width)}  ${shapeText(x)}`);
  };
  io('inputs', i.inputs);
  io('outputs', i.outputs);
  lines.push('ops:');
  if (i.opHistogram.length === 0) lines.push('  (none)');
  const opWidth = Math.max(0, ...i.opHistogram.map((o) => o.opType.length));
  const countWidth = Math.max(0, ...i.opHistogram.map((o) => int(o.count).length));
  for (const o of i.opHistogram) lines.push(`  ${o.opType.padEnd(opWidth)}  ${int(o.count).padStart(countWidth)}`);
  const keys = Object.keys(i.metadata);
  if (keys.length > 0) {
    lines.push('metadata:');
    for (const k of keys) lines.push(`  ${k}: ${oneLine(i.metadata[k], 100)}`);
  }
  return lines.join('\n');
}
