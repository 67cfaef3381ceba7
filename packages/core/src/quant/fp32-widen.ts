import { float16BitsToFloat32 } from '../onnx/float16.js';
import { tensorValues } from '../onnx/tensor.js';
import { DataType, type GraphProto, type ModelProto, type TensorProto, type TypeProto } from '../onnx/types.js';
import { cloneModel, requireGraph } from './graph-index.js';
import { float32Tensor } from './tensor-io.js';

/** What {@link widenFloat16} changed. */
export interface WidenFloat16Result {
  model: ModelProto;
  /** float16 initializers and Constant values turned into float32. */
  tensors: number;
  /** Cast nodes retargeted from float16 to float32. */
  casts: number;
  /** Graph inputs, outputs and value_info entries retyped. */
  values: number;
}

/**
 * Undoes a float16 conversion: every float16 tensor, value type and Cast target becomes float32, so
 * the model runs on ONNX Runtime's CPU provider, which has few float16 kernels and otherwise wraps
 * each op in casts (a float16 yolov5s ran 3.4× slower than its float32 original). The float16
 * rounding of the weights stays; nothing else about the graph changes. Subgraphs are widened too.
 * @example
 * const { model } = widenFloat16(await readOnnxFile('teacher.fp16.onnx'));
 */
export function widenFloat16(input: ModelProto): WidenFloat16Result {
  const model = cloneModel(input);
  const counts = { tensors: 0, casts: 0, values: 0 };
  widenGraph(requireGraph(model), counts);
  return { model, ...counts };
}

/** True when the model holds any float16 initializer, i.e. {@link widenFloat16} would change it. */
export function hasFloat16Weights(model: ModelProto): boolean {
  return (model.graph?.initializer ?? []).some((t) => t.dataType === DataType.FLOAT16);
}

function widenGraph(graph: GraphProto, counts: { tensors: number; casts: number; values: number }): void {
  graph.initializer = graph.initializer.map((t) => {
    if (t.dataType !== DataType.FLOAT16) return t;
    counts.tensors += 1;
    return widenTensor(t);
  });
  for (const list of [graph.input, graph.output, graph.valueInfo]) {
    for (const v of list) if (v.type && widenType(v.type)) counts.values += 1;
  }
  for (const node of graph.node) {
    for (const attr of node.attribute) {
      if (node.opType === 'Cast' && attr.name === 'to' && attr.i === BigInt(DataType.FLOAT16)) {
        attr.i = BigInt(DataType.FLOAT);
        counts.casts += 1;
      }
      if (attr.t?.dataType === DataType.FLOAT16) {
        attr.t = widenTensor(attr.t);
        counts.tensors += 1;
      }
      if (attr.g) widenGraph(attr.g, counts);
      for (const g of attr.graphs ?? []) widenGraph(g, counts);
    }
  }
}

function widenTensor(t: TensorProto): TensorProto {
  const values = float16BitsToFloat32(tensorValues(t) as Uint16Array);
  const wide = float32Tensor(t.name, t.dims, values);
  if (t.docString !== undefined) wide.docString = t.docString;
  return wide;
}

function widenType(type: TypeProto): boolean {
  const tt = type.tensorType;
  if (tt?.elemType !== DataType.FLOAT16) return false;
  tt.elemType = DataType.FLOAT;
  return true;
}
