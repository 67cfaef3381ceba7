import type { GraphProto, NodeProto, TensorProto } from '../onnx/types.js';
import { dropGraphInput } from './graph-index.js';
import type { QdqContext } from './qdq-context.js';
import type { QuantizedBiases } from './qdq-bias.js';
import type { ActivationPairs } from './qdq-emit.js';

/** Where readers of the quantized tensors switch to. */
export interface Rewiring extends QuantizedBiases, Omit<ActivationPairs, 'quantizedTensors'> {
  weightOut: Map<string, string>;
}

/**
 * Rewire readers: every reader gets the dequantized value (ORT's replace_input_of_all_nodes);
 * excluded nodes keep their float weights and biases. Sets the graph's nodes: the head nodes, then
 * each surviving node followed by the Q → DQ pairs of its outputs.
 */
export function rewireReaders(ctx: QdqContext, removed: ReadonlySet<NodeProto>, headNodes: readonly NodeProto[], r: Rewiring): void {
  const body: NodeProto[] = [];
  for (const n of ctx.nodes) {
    if (removed.has(n)) continue;
    const excluded = ctx.isExcluded(n);
    n.input = n.input.map((t, i) => {
      if (t === '') return t;
      if (excluded) return ctx.excludedReadFloat ? r.floatName.get(t) ?? t : r.dqOut.get(t) ?? t;
      if (i === 2 && r.floatBias.has(n)) return t;
      return r.biasOut.get(t) ?? r.weightOut.get(t) ?? r.dqOut.get(t) ?? t;
    });
    body.push(n);
    for (const o of n.output) {
      const pair = r.pairsAfter.get(o);
      if (pair) body.push(...pair);
    }
  }
  ctx.graph.node = [...headNodes, ...body];
}

/**
 * Adds the new initializers after dropping the `replaced` float ones nobody reads any more, and
 * the value_info of tensors that no longer exist.
 */
export function removeDeadTensors(graph: GraphProto, replaced: readonly string[], newInits: readonly TensorProto[]): void {
  // Float initializers nobody reads any more go (and leave graph.input, where IR < 4 listed them).
  const read = new Set<string>(graph.output.map((o) => o.name));
  for (const n of graph.node) for (const t of n.input) read.add(t);
  const gone = new Set(replaced);
  graph.initializer = graph.initializer.filter((t) => !gone.has(t.name) || read.has(t.name));
  for (const t of gone) if (!read.has(t)) dropGraphInput(graph, t);
  graph.initializer.push(...newInits);
  // value_info of tensors that no longer exist (a folded Relu's input) would confuse readers.
  const live = new Set<string>([...graph.input, ...graph.output].map((v) => v.name));
  for (const n of graph.node) for (const t of n.output) live.add(t);
  graph.valueInfo = graph.valueInfo.filter((v) => live.has(v.name));
}
