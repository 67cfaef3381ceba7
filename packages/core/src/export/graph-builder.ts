import { makeNode, makeValueInfo, type AttrValue } from '../onnx/graph-utils.js';
import { makeTensor } from '../onnx/tensor.js';
import { DataType, type GraphProto, type NodeProto, type TensorProto } from '../onnx/types.js';

export type { AttrValue };

/** `{ int: n }`, so integer attributes read clearly at the call site. */
export const int = (n: number): AttrValue => ({ int: n });
/** `{ ints: [...] }`. */
export const ints = (v: number[]): AttrValue => ({ ints: v });

/** Elem type and shape of a graph input or output (numbers, or names for dynamic axes). */
export interface IoSpec {
  name: string;
  elemType?: number;
  shape: (number | string)[];
}

/**
 * Builds an ONNX graph node by node with unique tensor names; used by the exporters, which know
 * nothing of protobuf. Node outputs are named after the node (`/model.2/cv1/conv/Conv_output_0`
 * style, as torch.onnx names them), so calibration caches and `--exclude` patterns read naturally.
 */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly inits: TensorProto[] = [];
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, string>();

  private unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  /** Reserves a graph input name. */
  input(name: string): string {
    this.used.add(name);
    return name;
  }

  /** Adds a float32 initializer with the given dims. */
  float(name: string, dims: number[], values: Float32Array): string {
    const unique = this.unique(name);
    this.inits.push(makeTensor(unique, DataType.FLOAT, dims, values));
    return unique;
  }

  /** Adds (once per distinct value) an int64 constant initializer. */
  int64s(values: number[], dims: number[] = [values.length]): string {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    const cached = this.constCache.get(key);
    if (cached !== undefined) return cached;
    const name = this.unique(`const_i64_${values.join('_').replace(/-/g, 'm')}`.slice(0, 60));
    this.inits.push(makeTensor(name, DataType.INT64, dims, values));
    this.constCache.set(key, name);
    return name;
  }

  /** Adds (once per distinct value) a float32 constant initializer. */
  floats(values: number[], dims: number[] = [values.length]): string {
    const key = `f32:${dims.join('x')}:${values.join(',')}`;
    const cached = this.constCache.get(key);
    if (cached !== undefined) return cached;
    const name = this.unique(`const_f32_${this.constCache.size}`);
    this.inits.push(makeTensor(name, DataType.FLOAT, dims, values));
    this.constCache.set(key, name);
    return name;
  }

  /**
   * Appends a node; `name` is its scope (`/model.0/conv/Conv`). Returns the output tensor names,
   * `${name}_output_${i}`.
   */
  node(opType: string, inputs: string[], name: string, attrs: Record<string, AttrValue> = {}, nOutputs = 1): string[] {
    const nodeName = this.unique(name);
    const outputs = Array.from({ length: nOutputs }, (_, i) => this.unique(`${nodeName}_output_${i}`));
    this.nodes.push(makeNode(opType, inputs, outputs, attrs, nodeName));
    return outputs;
  }

  /** Like {@link node} for single-output ops. */
  op(opType: string, inputs: string[], name: string, attrs: Record<string, AttrValue> = {}): string {
    return this.node(opType, inputs, name, attrs, 1)[0]!;
  }

  /**
   * Renames the output tensor of the last node that produced `tensor` (graph outputs get their
   * public names, such as `output0`, this way).
   */
  rename(tensor: string, to: string): string {
    if (this.used.has(to)) throw new RangeError(`rename: ${to} is already used`);
    const n = this.nodes.find((nd) => nd.output.includes(tensor));
    if (n === undefined) throw new RangeError(`rename: no node produces ${tensor}`);
    n.output = n.output.map((o) => (o === tensor ? to : o));
    for (const nd of this.nodes) nd.input = nd.input.map((i) => (i === tensor ? to : i));
    this.used.add(to);
    return to;
  }

  /** The finished graph. */
  graph(name: string, inputs: IoSpec[], outputs: IoSpec[]): GraphProto {
    return {
      name,
      node: this.nodes,
      initializer: this.inits,
      input: inputs.map((io) => makeValueInfo(io.name, io.elemType ?? DataType.FLOAT, io.shape)),
      output: outputs.map((io) => makeValueInfo(io.name, io.elemType ?? DataType.FLOAT, io.shape)),
      valueInfo: [],
    };
  }
}
