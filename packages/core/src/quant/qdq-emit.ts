import { AttributeType, type NodeProto } from '../onnx/types.js';
import type { QdqAdditions, QdqContext } from './qdq-context.js';
import type { Mark } from './qdq-marks.js';
import type { QdqParams } from './qdq-params.js';
import { weightDq } from './weight-quant.js';

export const Q_SUFFIX = '_QuantizeLinear';
export const DQ_SUFFIX = '_DequantizeLinear';

/** The activations now behind QuantizeLinear → DequantizeLinear, and the names their readers switch to. */
export interface ActivationPairs {
  quantizedTensors: string[];
  /** Tensor → its dequantized value. */
  dqOut: Map<string, string>;
  /** Tensor → name of its float value for excluded readers. */
  floatName: Map<string, string>;
  /** Producer output → the Q and DQ nodes that follow its producer. */
  pairsAfter: Map<string, NodeProto[]>;
}

/** A DequantizeLinear node, per axis when `axis` is given. */
export function dqNode(name: string, input: string[], output: string, axis: number | undefined): NodeProto {
  return {
    name,
    opType: 'DequantizeLinear',
    domain: '',
    input,
    output: [output],
    attribute: axis === undefined ? [] : [{ name: 'axis', type: AttributeType.INT, i: BigInt(axis) }],
  };
}

/**
 * Writes each weight and constant as int8 behind a DequantizeLinear (a head node); returns the
 * DequantizeLinear output by weight. A per-tensor one's parameters join `params.act` for its sharers.
 */
export function emitWeightDqs(params: QdqParams, adds: QdqAdditions): Map<string, string> {
  const weightOut = new Map<string, string>();
  for (const [t, w] of params.weights) {
    const dq = weightDq(w, adds.names);
    adds.initializers.push(...dq.initializers);
    adds.headNodes.push(dq.node);
    weightOut.set(t, dq.output);
    if (w.axis === undefined) {
      const [, scaleName, zpName] = dq.node.input;
      params.act.set(t, { scaleName, zpName, scale: w.scales[0], zeroPoint: w.zeroPoints[0] });
    }
  }
  return weightOut;
}

/**
 * Activation Q → DQ pairs, one per tensor; a graph output keeps its name on the DequantizeLinear.
 * A pair goes right after its producer, or among the head nodes for a graph input.
 */
export function emitActivationPairs(ctx: QdqContext, marks: ReadonlyMap<string, Mark>, params: QdqParams, adds: QdqAdditions): ActivationPairs {
  const { names } = adds;
  const { graphInputs, graphOutputs, producers } = ctx;
  const pairs: ActivationPairs = { quantizedTensors: [], dqOut: new Map(), floatName: new Map(), pairsAfter: new Map() };
  for (const [t, m] of marks) {
    if (m.kind === 'weight' || m.kind === 'constant') continue;
    const p = params.act.get(params.provider(t)!)!;
    let qIn = t;
    let dOut: string;
    if (graphOutputs.has(t) && !graphInputs.has(t)) {
      qIn = names.unique(`${t}${Q_SUFFIX}_Input`);
      dOut = t;
      const producer = producers.get(t);
      if (producer) producer.output = producer.output.map((o) => (o === t ? qIn : o));
      pairs.floatName.set(t, qIn);
    } else {
      dOut = names.unique(`${t}${DQ_SUFFIX}_Output`);
    }
    const qOut = names.unique(`${t}${Q_SUFFIX}_Output`);
    const q: NodeProto = {
      name: names.unique(`${t}${Q_SUFFIX}`),
      opType: 'QuantizeLinear',
      domain: '',
      input: [qIn, p.scaleName, p.zpName],
      output: [qOut],
      attribute: [],
    };
    const dq = dqNode(names.unique(`${t}${DQ_SUFFIX}`), [qOut, p.scaleName, p.zpName], dOut, undefined);
    pairs.dqOut.set(t, dOut);
    pairs.quantizedTensors.push(t);
    if (graphInputs.has(t) || !producers.has(t)) adds.headNodes.push(q, dq);
    else pairs.pairsAfter.set(qIn, [q, dq]);
  }
  return pairs;
}
