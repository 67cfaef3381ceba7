import * as tf from '../tf.js';
import { paramGroupOf, type ParamGroupIndex } from './param-groups.js';

/** Per-group settings that the schedule changes every step. */
export interface GroupState {
  lr: number;
  momentum: number;
  weightDecay: number;
}

/**
 * SGD with Nesterov momentum as PyTorch computes it (dampening 0):
 * d = g + wd·p; buf = μ·buf + d; d = d + μ·buf; p −= lr·d. Momentum buffers are variables,
 * so they persist across steps without leaking.
 */
export class NesterovSgd {
  readonly groups: [GroupState, GroupState, GroupState];
  private readonly buffers = new Map<string, tf.Variable>();

  constructor(
    private readonly params: Map<string, tf.Variable>,
    lr: number,
    momentum: number,
    weightDecay: number,
  ) {
    this.groups = [
      { lr, momentum, weightDecay: 0 },
      { lr, momentum, weightDecay },
      { lr, momentum, weightDecay: 0 },
    ];
  }

  /** Applies one update from gradients keyed by parameter name. */
  step(grads: Record<string, tf.Tensor>): void {
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const g0 = grads[name];
        if (!g0) continue;
        const grp = this.groups[paramGroupOf(name) as ParamGroupIndex];
        const d = grp.weightDecay ? g0.add(p.mul(grp.weightDecay)) : g0;
        let buf = this.buffers.get(name);
        if (!buf) {
          buf = tf.variable(d, false, `sgd/${name}`);
          this.buffers.set(name, buf);
        } else {
          buf.assign(buf.mul(grp.momentum).add(d));
        }
        p.assign(p.sub(d.add(buf.mul(grp.momentum)).mul(grp.lr)));
      }
    });
  }

  /** Momentum buffers for checkpoints. */
  state(): Map<string, tf.Tensor> {
    return new Map(this.buffers);
  }

  /** Restores momentum buffers saved by {@link state}. */
  loadState(buffers: Map<string, { shape: number[]; data: Float32Array }>): void {
    for (const [name, b] of buffers) {
      const old = this.buffers.get(name);
      const t = tf.tensor(b.data, b.shape);
      if (old) { old.assign(t); t.dispose(); } else { this.buffers.set(name, tf.variable(t, false, `sgd/${name}`)); t.dispose(); }
    }
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}

/** Scales all gradients so their global L2 norm is at most `maxNorm` (torch clip_grad_norm_). Returns the norm before clipping. */
export function clipGradNorm(grads: Record<string, tf.Tensor>, maxNorm: number): { grads: Record<string, tf.Tensor>; norm: number } {
  const sq = tf.tidy(() => tf.addN(Object.values(grads).map((g) => g.square().sum())).sqrt());
  const norm = sq.dataSync()[0];
  sq.dispose();
  const coef = maxNorm / (norm + 1e-6);
  if (!(coef < 1)) return { grads, norm };
  const out: Record<string, tf.Tensor> = {};
  for (const [k, g] of Object.entries(grads)) { out[k] = g.mul(coef); g.dispose(); }
  return { grads: out, norm };
}
