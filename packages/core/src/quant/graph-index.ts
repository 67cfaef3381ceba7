import type { GraphProto, ModelProto, NodeProto } from '../onnx/types.js';
import { QuantError } from './quant-error.js';

/** Node and tensor pattern: an exact name or a regular expression tested against the name. */
export type NamePattern = string | RegExp;

/** True when `name` equals one of the strings or matches one of the regular expressions. */
export function matchesAny(name: string, patterns: readonly NamePattern[] | undefined): boolean {
  if (!patterns) return false;
  return patterns.some((p) => (typeof p === 'string' ? p === name : p.test(name)));
}

/** Map from tensor name to the node that produces it. */
export function producerMap(graph: GraphProto): Map<string, NodeProto> {
  const m = new Map<string, NodeProto>();
  for (const n of graph.node) for (const o of n.output) if (o !== '') m.set(o, n);
  return m;
}

/** Map from tensor name to the nodes that read it (a node reading it twice appears once). */
export function consumerMap(graph: GraphProto): Map<string, NodeProto[]> {
  const m = new Map<string, NodeProto[]>();
  for (const n of graph.node) {
    for (const i of new Set(n.input)) {
      if (i === '') continue;
      const list = m.get(i);
      if (list) list.push(n);
      else m.set(i, [n]);
    }
  }
  return m;
}

/** Every name used in the graph (tensors, nodes, initializers), so new names never collide. */
export class NameScope {
  private readonly used = new Set<string>();

  constructor(graph: GraphProto) {
    for (const v of [...graph.input, ...graph.output, ...graph.valueInfo]) this.used.add(v.name);
    for (const t of graph.initializer) this.used.add(t.name);
    for (const n of graph.node) {
      if (n.name) this.used.add(n.name);
      for (const x of [...n.input, ...n.output]) if (x) this.used.add(x);
    }
  }

  /** `base` itself when free (ORT's naming), otherwise `base_1`, `base_2`, ... */
  unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

/** A deep copy, so passes never mutate the caller's model. */
export function cloneModel(model: ModelProto): ModelProto {
  return structuredClone(model);
}

/** The model's graph, or a QuantError when it has none. */
export function requireGraph(model: ModelProto): GraphProto {
  if (!model.graph) throw new QuantError('QUANT_MODEL_INVALID', 'model has no graph');
  return model.graph;
}

/** The ai.onnx opset the model imports (0 when it imports none). */
export function onnxOpset(model: ModelProto): number {
  const op = model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  return op?.version ?? 0;
}

/**
 * The nodes in an order where every tensor is produced before it is read. ONNX requires graphs to
 * be sorted already; sorting again costs little and lets passes insert nodes after producers.
 */
export function topologicalNodes(graph: GraphProto): NodeProto[] {
  const prod = producerMap(graph);
  const state = new Map<NodeProto, 1 | 2>();
  const order: NodeProto[] = [];
  const visit = (root: NodeProto): void => {
    // Iterative DFS: exported detectors have thousands of nodes and deep chains.
    const stack: [NodeProto, number][] = [[root, 0]];
    state.set(root, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const [node, idx] = top;
      if (idx < node.input.length) {
        top[1]++;
        const p = prod.get(node.input[idx]);
        if (!p || p === node) continue;
        const s = state.get(p);
        if (s === 1) throw new QuantError('QUANT_MODEL_INVALID', `graph has a cycle through node '${p.name}'`);
        if (s === undefined) {
          state.set(p, 1);
          stack.push([p, 0]);
        }
      } else {
        stack.pop();
        state.set(node, 2);
        order.push(node);
      }
    }
  };
  for (const n of graph.node) if (!state.has(n)) visit(n);
  return order;
}

/** Removes `name` from graph.input (IR < 4 models list initializers there too). */
export function dropGraphInput(graph: GraphProto, name: string): void {
  const i = graph.input.findIndex((v) => v.name === name);
  if (i >= 0) graph.input.splice(i, 1);
}
