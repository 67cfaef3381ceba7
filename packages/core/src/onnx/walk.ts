import type { AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto } from './types.js';

/**
 * Where a tensor sits: a dense initializer, the values or indices of a sparse initializer, or a
 * node attribute (a Constant's value, for example; sparse attribute parts included).
 */
export type TensorRole = 'initializer' | 'sparse-values' | 'sparse-indices' | 'attribute';

/** What {@link walkModel} reports for each graph it enters. */
export interface WalkVisitor {
  /** Called for the main graph (depth 0) and each subgraph (in attributes, training info). */
  graph?(graph: GraphProto, path: string, depth: number): void;
  /** Called for every node of every graph and function. */
  node?(node: NodeProto, path: string): void;
  /** Called for every tensor: initializers, the parts of sparse tensors, attribute tensors. */
  tensor?(tensor: TensorProto, path: string, role: TensorRole): void;
}

/**
 * Visits every graph, node and tensor of a model, subgraphs and functions included, depth first.
 * Paths read like decoding errors: `graph.node[3].attribute[0].g.initializer[1]`.
 */
export function walkModel(model: ModelProto, visitor: WalkVisitor): void {
  if (model.graph !== undefined) walkGraph(model.graph, 'graph', 0, visitor);
  model.trainingInfo?.forEach((ti, i) => {
    if (ti.initialization) walkGraph(ti.initialization, `training_info[${i}].initialization`, 1, visitor);
    if (ti.algorithm) walkGraph(ti.algorithm, `training_info[${i}].algorithm`, 1, visitor);
  });
  model.functions?.forEach((f, i) => {
    f.node.forEach((n, j) => walkNode(n, `functions[${i}].node[${j}]`, 1, visitor));
  });
}

function walkGraph(g: GraphProto, path: string, depth: number, v: WalkVisitor): void {
  v.graph?.(g, path, depth);
  g.initializer.forEach((t, i) => v.tensor?.(t, `${path}.initializer[${i}]`, 'initializer'));
  g.sparseInitializer?.forEach((s, i) => {
    if (s.values) v.tensor?.(s.values, `${path}.sparse_initializer[${i}].values`, 'sparse-values');
    if (s.indices) v.tensor?.(s.indices, `${path}.sparse_initializer[${i}].indices`, 'sparse-indices');
  });
  g.node.forEach((n, i) => walkNode(n, `${path}.node[${i}]`, depth, v));
}

function walkNode(n: NodeProto, path: string, depth: number, v: WalkVisitor): void {
  v.node?.(n, path);
  n.attribute.forEach((a, i) => walkAttribute(a, `${path}.attribute[${i}]`, depth, v));
}

function walkAttribute(a: AttributeProto, path: string, depth: number, v: WalkVisitor): void {
  if (a.t) v.tensor?.(a.t, `${path}.t`, 'attribute');
  a.tensors?.forEach((t, i) => v.tensor?.(t, `${path}.tensors[${i}]`, 'attribute'));
  const sparse = a.sparseTensor ? [a.sparseTensor] : [];
  [...sparse, ...(a.sparseTensors ?? [])].forEach((s, i) => {
    const p = a.sparseTensor && i === 0 ? `${path}.sparse_tensor` : `${path}.sparse_tensors[${a.sparseTensor ? i - 1 : i}]`;
    if (s.values) v.tensor?.(s.values, `${p}.values`, 'attribute');
    if (s.indices) v.tensor?.(s.indices, `${p}.indices`, 'attribute');
  });
  if (a.g) walkGraph(a.g, `${path}.g`, depth + 1, v);
  a.graphs?.forEach((g, i) => walkGraph(g, `${path}.graphs[${i}]`, depth + 1, v));
}
