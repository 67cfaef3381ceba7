import { attrFloat, attrInt, attrString } from '../onnx/graph-utils.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import type { QDQ_OP_HANDLERS, QdqOpType } from './qdq.js';
import type { QdqContext } from './qdq-context.js';
import { readFloat32 } from './tensor-io.js';

/**
 * How a tensor is quantized: with its own calibrated parameters, as an int8 weight (per channel along
 * `axis`, or per tensor), as a float constant from its own values, or with a provider's parameters.
 */
export type Mark =
  | { kind: 'activation' }
  | { kind: 'weight'; axis: number | undefined }
  | { kind: 'constant' }
  | { kind: 'shared'; provider: string };

/** A Conv / Gemm bias initializer to store as int32, with the input and weight whose scales give its scale. */
export interface BiasRequest {
  node: NodeProto;
  bias: string;
  input: string;
  weight: string;
  beta: number;
}

type Handler = (typeof QDQ_OP_HANDLERS)[QdqOpType];

function validAxis(axis: number, rank: number): number | undefined {
  if (axis < -rank || axis >= rank) return undefined;
  return axis < 0 ? axis + rank : axis;
}

/** Marks, node by node, the tensors each op handler of `QDQ_OP_HANDLERS` quantizes. */
export class TensorMarker {
  /** Every tensor to quantize, in the order first marked. */
  readonly marks = new Map<string, Mark>();
  readonly biases: BiasRequest[] = [];
  /** Relu / Clip nodes folded into their producer's quantization. */
  readonly removed = new Set<NodeProto>();

  constructor(private readonly ctx: QdqContext) {}

  /** Marks what `n` needs quantized; returns why it stays float, or undefined. */
  mark(n: NodeProto, kind: Handler): string | undefined {
    const { inits, opset } = this.ctx;
    const [in0] = n.input;
    switch (kind) {
      case 'conv':
        this.markActivation(in0);
        this.markActivation(n.output[0]);
        this.markWeight(n.input[1], n.opType === 'Conv' ? 0 : 1);
        if (n.input[2]) this.markBias(n, n.input[2], 1);
        return undefined;
      case 'gemm': {
        this.markActivation(in0);
        this.markActivation(n.output[0]);
        this.markWeight(n.input[1], attrInt(n, 'transB', 0) !== 0 ? 0 : 1);
        if (n.input[2] && inits.has(n.input[2])) {
          this.markBias(n, n.input[2], attrFloat(n, 'beta', 1));
        } else if (n.input[2]) {
          this.markActivation(n.input[2]);
        }
        return undefined;
      }
      case 'matmul':
        for (const t of n.input) {
          if (inits.has(t)) this.markWeight(t, 1);
          else this.markActivation(t);
        }
        this.markActivation(n.output[0]);
        return undefined;
      case 'removable':
        if (!this.isQuantized(in0)) return 'input not quantized';
        if (!this.ctx.symmetric && !this.ctx.keepRemovable && this.tryReplaceUpstream(in0, n.output[0])) {
          this.removed.add(n);
        } else {
          this.markActivation(in0);
        }
        this.markActivation(n.output[0]);
        return undefined;
      case 'maxpool':
        if (opset < 12) return 'int8 MaxPool needs opset 12';
        return this.direct8bit(n);
      case 'resize':
        if (opset < 11) return 'int8 Resize needs opset 11';
        return this.direct8bit(n);
      case 'direct8bit':
        return this.direct8bit(n);
      case 'gather':
        if (inits.has(in0) && this.isFloat(in0)) {
          this.markActivation(in0);
          this.markShared(n.output[0], in0);
          return undefined;
        }
        return this.direct8bit(n);
      case 'split':
        this.markActivation(in0);
        for (const o of n.output) this.markShared(o, in0);
        return undefined;
      case 'pad': {
        this.markActivation(in0);
        const mode = attrString(n, 'mode', 'constant');
        const value = n.input[2] ? inits.get(n.input[2]) : undefined;
        const zeroPad = !n.input[2] || (value !== undefined && value.dataType === DataType.FLOAT && readFloat32(value).every((v) => v === 0));
        if (mode !== 'constant' || zeroPad) this.markShared(n.output[0], in0);
        else this.markActivation(n.output[0]);
        return undefined;
      }
      case 'base':
        for (const t of n.input) this.markActivation(t);
        for (const t of n.output) this.markActivation(t);
        return undefined;
    }
  }

  private direct8bit(n: NodeProto): string | undefined {
    if (!this.isQuantized(n.input[0])) return 'input not quantized';
    this.markShared(n.output[0], n.input[0]);
    return undefined;
  }

  // float16 activations would need float16 scales (opset 19); only float32 is quantized.
  private isFloat(t: string): boolean {
    return t !== '' && this.ctx.types.get(t) === DataType.FLOAT;
  }

  private isQuantized(t: string): boolean {
    return this.marks.has(t);
  }

  private markActivation(t: string): void {
    if (!this.isFloat(t) || this.marks.has(t)) return;
    // A float constant in an activation slot is quantized from its own values, per tensor.
    this.marks.set(t, this.ctx.inits.has(t) ? { kind: 'constant' } : { kind: 'activation' });
  }

  private markWeight(t: string, defaultAxis: number): void {
    const w = this.ctx.inits.get(t);
    if (!w) return this.markActivation(t); // a computed weight is an activation like any other
    if (w.dataType !== DataType.FLOAT || this.marks.has(t)) return;
    const axis = this.ctx.perChannel ? validAxis(defaultAxis, w.dims.length) : undefined;
    this.marks.set(t, { kind: 'weight', axis: w.dims.length > 1 ? axis : undefined });
  }

  private markShared(t: string, provider: string): void {
    if (!this.isFloat(t) || this.marks.has(t)) return;
    this.marks.set(t, this.ctx.inits.has(t) ? { kind: 'constant' } : { kind: 'shared', provider });
  }

  private markBias(node: NodeProto, bias: string, beta: number): void {
    const b = this.ctx.inits.get(bias);
    if (!b || b.dataType !== DataType.FLOAT) {
      this.ctx.warnings.push(`bias '${bias}' of '${node.name}' is not a float32 initializer; left in float`);
      return;
    }
    this.biases.push({ node, bias, input: node.input[0], weight: node.input[1], beta });
  }

  // qdq_quantizer.try_replacing_upstream_output: fold a Relu/Clip into the producer's quantization.
  private tryReplaceUpstream(up: string, outName: string): boolean {
    const { producers, consumers, ranges, graphInputs, graphOutputs } = this.ctx;
    const producer = producers.get(up);
    if (!producer || !ranges.has(outName)) return false;
    if (consumers.get(up)?.length !== 1 || graphOutputs.has(up) || graphInputs.has(up)) return false;
    producer.output = producer.output.map((o) => (o === up ? outName : o));
    producers.set(outName, producer);
    this.marks.delete(up);
    return true;
  }
}
