import * as tf from '../tf.js';
import { paramGroupOf } from './param-groups.js';

/** Adam's variants: L2 decay added to the gradient (torch Adam) or decoupled from it (torch AdamW). */
export type AdamKind = 'adam' | 'adamw';

/** Options of {@link Adam}. */
export interface AdamOptions {
  lr: number;
  /** β1 (ultralytics passes its momentum, 0.9). */
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Weight decay of the weights group; biases and BatchNorm weights get none (ultralytics smart_optimizer). */
  weightDecay?: number;
  kind?: AdamKind;
}

/**
 * Adam (Kingma and Ba 2015, Algorithm 1) as torch.optim.Adam / AdamW compute it, with ultralytics'
 * parameter groups: decay only on weights that are not BatchNorm's (group 1 of {@link paramGroupOf}).
 * Moments are variables, so they persist across steps without leaking; `lr` may change between steps.
 * @example
 * const opt = new Adam(model.params, { lr: 0.001, beta1: 0.9, weightDecay: 5e-5 });
 * opt.step(grads);
 */
export class Adam {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly kind: AdamKind;
  /** Steps taken (the bias correction's t). */
  t = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(private readonly params: Map<string, tf.Variable>, opts: AdamOptions) {
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.kind = opts.kind ?? 'adam';
    for (const [k, v] of [['lr', this.lr], ['beta1', this.beta1], ['beta2', this.beta2], ['eps', this.eps], ['weightDecay', this.weightDecay]] as const) {
      if (!(Number.isFinite(v) && v >= 0)) throw new RangeError(`${k}: expected a finite number ≥ 0, got ${String(v)}`);
    }
    if (this.beta1 >= 1 || this.beta2 >= 1) throw new RangeError(`beta1, beta2: expected numbers < 1, got ${this.beta1}, ${this.beta2}`);
  }

  /** Applies one update from gradients keyed by parameter name (parameters without one are left alone). */
  step(grads: Record<string, tf.Tensor>): void {
    this.t++;
    const { beta1: b1, beta2: b2, lr, t } = this;
    const c1 = 1 - b1 ** t;
    const c2 = 1 - b2 ** t;
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        let g = grads[name];
        if (!g) continue;
        const wd = paramGroupOf(name) === 1 ? this.weightDecay : 0;
        if (wd > 0 && this.kind === 'adam') g = g.add(p.mul(wd));
        const m = this.moment(this.m, name, p, 'm');
        const v = this.moment(this.v, name, p, 'v');
        m.assign(m.mul(b1).add(g.mul(1 - b1)));
        v.assign(v.mul(b2).add(g.square().mul(1 - b2)));
        // p −= lr·m̂/(√v̂ + ε), with m̂ = m/c1 and v̂ = v/c2 (torch's order of operations).
        const update = m.div(c1).div(v.div(c2).sqrt().add(this.eps)).mul(lr);
        const base = wd > 0 && this.kind === 'adamw' ? p.mul(1 - lr * wd) : p;
        p.assign(base.sub(update));
      }
    });
  }

  /**
   * The first and second moments for checkpoints, as `m/<param>` and `v/<param>` (with {@link Adam.t},
   * the step count of the bias correction, they are Adam's whole state).
   */
  state(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, m] of this.m) out.set(`m/${name}`, m);
    for (const [name, v] of this.v) out.set(`v/${name}`, v);
    return out;
  }

  /** Restores moments saved by {@link state} and the step count `t` they were reached at. */
  loadState(moments: Map<string, { shape: number[]; data: Float32Array }>, t: number): void {
    if (!(Number.isInteger(t) && t >= 0)) throw new RangeError(`t: expected an integer ≥ 0, got ${String(t)}`);
    // Variables made inside tidy outlive it; the zeros they start from do not.
    tf.tidy(() => {
      for (const [key, b] of moments) {
        const tag = key.slice(0, 2);
        const name = key.slice(2);
        const p = this.params.get(name);
        if ((tag !== 'm/' && tag !== 'v/') || p === undefined) throw new RangeError(`moments: ${key} is not m/ or v/ of a parameter`);
        if (b.data.length !== p.size) throw new RangeError(`moments: ${key} has ${b.data.length} values, the parameter ${p.size}`);
        this.moment(tag === 'm/' ? this.m : this.v, name, p, tag[0]!).assign(tf.tensor(b.data, p.shape));
      }
    });
    this.t = t;
  }

  private moment(map: Map<string, tf.Variable>, name: string, p: tf.Variable, tag: string): tf.Variable {
    let s = map.get(name);
    if (!s) {
      s = tf.variable(tf.zerosLike(p), false, `adam/${tag}/${name}`);
      map.set(name, s);
    }
    return s;
  }

  dispose(): void {
    for (const s of [...this.m.values(), ...this.v.values()]) s.dispose();
    this.m.clear();
    this.v.clear();
  }
}
