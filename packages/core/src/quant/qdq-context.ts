import type { GraphProto, ModelProto, NodeProto, TensorProto } from '../onnx/types.js';
import type { TensorRange } from './calibrate/types.js';
import type { NameScope } from './graph-index.js';

/** What every step of `quantizeQdq` reads: the checked options and indexes of the copy being rewritten. */
export interface QdqContext {
  /** The copy of the caller's model that the pass rewrites, and its graph. */
  model: ModelProto;
  graph: GraphProto;
  opset: number;
  symmetric: boolean;
  actType: 'int8' | 'uint8';
  /** Per-channel weights: asked for, and the opset has a per-axis DequantizeLinear. */
  perChannel: boolean;
  keepRemovable: boolean;
  reduceRange: boolean | undefined;
  excludedReadFloat: boolean | undefined;
  opTypes: ReadonlySet<string>;
  isExcluded: (n: NodeProto) => boolean;
  types: Map<string, number>;
  inits: Map<string, TensorProto>;
  /** Graph inputs that are not initializers. */
  graphInputs: Set<string>;
  graphOutputs: Set<string>;
  consumers: Map<string, NodeProto[]>;
  producers: Map<string, NodeProto>;
  /** The nodes in topological order. */
  nodes: NodeProto[];
  /** The caller's ranges, as the pass adjusts them. */
  ranges: Map<string, TensorRange>;
  warnings: string[];
}

/** What the pass adds to the graph: names that collide with none, new initializers, nodes placed before all others. */
export interface QdqAdditions {
  names: NameScope;
  initializers: TensorProto[];
  headNodes: NodeProto[];
}
