import type { LayerSpec } from './description.js';

/** How a parameter is initialised. */
export type ParamInit =
  | { kind: 'uniform'; bound: number }
  | { kind: 'fill'; value: number }
  /** PyTorch's default bias init plus YOLOv5's `_initialize_biases` prior for objectness and classes. */
  | { kind: 'detectBias'; bound: number; na: number; nc: number; stride: number };

/** One tensor of a model's state, named as in ultralytics' state_dict. */
export interface ParamSpec {
  name: string;
  shape: number[];
  /** false for BatchNorm running statistics (buffers). */
  trainable: boolean;
  init: ParamInit;
}

/** A Conv module (Conv2d without bias → BatchNorm → SiLU). */
export interface ConvPlan {
  prefix: string;
  c1: number;
  c2: number;
  k: number;
  s: number;
  p: number;
  /** false when the yaml asks for no activation. */
  act: boolean;
}

/** A Bottleneck inside C3: 1×1 then 3×3, with a residual when `add`. */
export interface BottleneckPlan {
  cv1: ConvPlan;
  cv2: ConvPlan;
  add: boolean;
}

interface LayerBase {
  index: number;
  /** Absolute indices of the inputs; -1 is the network input. */
  from: number[];
  /** Output channels. */
  c2: number;
  /** Total stride of the output relative to the input image. */
  stride: number;
}

/** One planned layer with every shape resolved. */
export type LayerPlan =
  | (LayerBase & { type: 'Conv'; conv: ConvPlan })
  | (LayerBase & { type: 'C3'; cv1: ConvPlan; cv2: ConvPlan; cv3: ConvPlan; m: BottleneckPlan[] })
  | (LayerBase & { type: 'SPPF'; cv1: ConvPlan; cv2: ConvPlan; k: number })
  | (LayerBase & { type: 'Upsample'; scale: number })
  | (LayerBase & { type: 'Concat' })
  | (LayerBase & {
      type: 'Detect';
      nc: number;
      na: number;
      /** Per level: conv prefix (`model.24.m.0`), input channels and stride. */
      levels: { prefix: string; c1: number; stride: number }[];
    });

/** Python 3's round(): halves go to the even neighbour (round(2.5) == 2). */
export function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** ultralytics `make_divisible`: the smallest multiple of `divisor` not below x. */
export function makeDivisible(x: number, divisor = 8): number {
  return Math.ceil(x / divisor) * divisor;
}

function convPlan(prefix: string, c1: number, c2: number, k: number, s: number, p: number | null, act = true): ConvPlan {
  return { prefix, c1, c2, k, s, p: p ?? Math.floor(k / 2), act };
}

function intArg(args: unknown[], i: number, dflt: number, where: string): number {
  const v = args[i] ?? dflt;
  if (!Number.isInteger(v) || (v as number) < 0) throw new RangeError(`${where}.args[${i}]: expected an integer >= 0, got ${JSON.stringify(v)}`);
  return v as number;
}

/** Options for planning a layer list. */
export interface PlanOptions {
  depth_multiple: number;
  width_multiple: number;
  nc: number;
  anchors: number[][];
  /** Input image channels (3). */
  inChannels?: number;
}

/**
 * Resolves a yaml layer list into shapes, as ultralytics' `parse_model` does: channels become
 * make_divisible(c·gw, 8) and repeats max(round(n·gd), 1). Throws RangeError on bad wiring or arguments.
 */
export function planLayers(layers: readonly LayerSpec[], opts: PlanOptions): LayerPlan[] {
  const gd = opts.depth_multiple;
  const gw = opts.width_multiple;
  const inCh = opts.inChannels ?? 3;
  const plans: LayerPlan[] = [];
  const chOf = (j: number): number => (j < 0 ? inCh : plans[j]!.c2);
  const strideOf = (j: number): number => (j < 0 ? 1 : plans[j]!.stride);

  layers.forEach(([f, n0, module, args], i) => {
    const where = `layer ${i} (${module})`;
    const from = (Array.isArray(f) ? f : [f]).map((j) => {
      // Python list indexing over the outputs so far: -1 is the previous layer (the input for layer 0).
      const abs = j < 0 ? i + j : j;
      if (abs >= i || abs < -1) throw new RangeError(`${where}.from: index ${j} does not refer to an earlier layer`);
      return abs;
    });
    const n = n0 > 1 ? Math.max(pyRound(n0 * gd), 1) : n0;
    if (n > 1 && module !== 'C3') throw new RangeError(`${where}.repeats: only C3 layers may repeat, got ${n0}`);
    if (module !== 'Concat' && module !== 'Detect' && from.length !== 1) {
      throw new RangeError(`${where}.from: ${module} takes one input, got ${JSON.stringify(f)}`);
    }
    const prefix = `model.${i}`;
    const c1 = chOf(from[0]!);
    const s1 = strideOf(from[0]!);
    const outCh = (): number => {
      const c = args[0];
      if (!Number.isInteger(c) || (c as number) < 1) throw new RangeError(`${where}.args[0]: expected channels >= 1, got ${JSON.stringify(c)}`);
      return makeDivisible((c as number) * gw, 8);
    };
    switch (module) {
      case 'Conv': {
        const c2 = outCh();
        const k = intArg(args, 1, 1, where);
        const s = intArg(args, 2, 1, where);
        const p = args[3] === null || args[3] === undefined ? null : intArg(args, 3, 0, where);
        if ((args[4] ?? 1) !== 1) throw new RangeError(`${where}.args[4]: grouped convolution (g=${String(args[4])}) is not supported`);
        if ((args[5] ?? 1) !== 1) throw new RangeError(`${where}.args[5]: dilation (d=${String(args[5])}) is not supported`);
        const act = args[6] ?? true;
        if (typeof act !== 'boolean') throw new RangeError(`${where}.args[6]: act must be true or false, got ${JSON.stringify(act)}`);
        if (k < 1 || s < 1) throw new RangeError(`${where}.args: kernel and stride must be >= 1`);
        plans.push({ type: 'Conv', index: i, from, c2, stride: s1 * s, conv: convPlan(prefix, c1, c2, k, s, p, act) });
        break;
      }
      case 'C3': {
        const c2 = outCh();
        const shortcut = args[1] ?? true;
        if (typeof shortcut !== 'boolean') throw new RangeError(`${where}.args[1]: shortcut must be true or false, got ${JSON.stringify(shortcut)}`);
        if ((args[2] ?? 1) !== 1) throw new RangeError(`${where}.args[2]: grouped convolution is not supported`);
        const e = args[3] ?? 0.5;
        if (typeof e !== 'number' || !(e > 0)) throw new RangeError(`${where}.args[3]: expansion must be a number > 0`);
        const c = Math.trunc(c2 * e);
        const m: BottleneckPlan[] = [];
        for (let j = 0; j < n; j++) {
          const bp = `${prefix}.m.${j}`;
          m.push({ cv1: convPlan(`${bp}.cv1`, c, c, 1, 1, null), cv2: convPlan(`${bp}.cv2`, c, c, 3, 1, null), add: shortcut });
        }
        plans.push({
          type: 'C3', index: i, from, c2, stride: s1, m,
          cv1: convPlan(`${prefix}.cv1`, c1, c, 1, 1, null),
          cv2: convPlan(`${prefix}.cv2`, c1, c, 1, 1, null),
          cv3: convPlan(`${prefix}.cv3`, 2 * c, c2, 1, 1, null),
        });
        break;
      }
      case 'SPPF': {
        const c2 = outCh();
        const k = intArg(args, 1, 5, where);
        if (k % 2 !== 1) throw new RangeError(`${where}.args[1]: pool size must be odd, got ${k}`);
        const c = Math.floor(c1 / 2);
        plans.push({
          type: 'SPPF', index: i, from, c2, stride: s1, k,
          cv1: convPlan(`${prefix}.cv1`, c1, c, 1, 1, null),
          cv2: convPlan(`${prefix}.cv2`, c * 4, c2, 1, 1, null),
        });
        break;
      }
      case 'nn.Upsample': {
        if (args[0] !== null && args[0] !== undefined) throw new RangeError(`${where}.args[0]: only size=None is supported`);
        const scale = args[1];
        if (!Number.isInteger(scale) || (scale as number) < 1) throw new RangeError(`${where}.args[1]: scale must be an integer >= 1`);
        if ((args[2] ?? 'nearest') !== 'nearest') throw new RangeError(`${where}.args[2]: only 'nearest' mode is supported`);
        plans.push({ type: 'Upsample', index: i, from, c2: c1, stride: s1 / (scale as number), scale: scale as number });
        break;
      }
      case 'Concat': {
        if ((args[0] ?? 1) !== 1) throw new RangeError(`${where}.args[0]: only channel concatenation (dimension 1) is supported`);
        const strides = from.map(strideOf);
        if (strides.some((s) => s !== strides[0])) {
          throw new RangeError(`${where}.from: inputs have different strides ${JSON.stringify(strides)}`);
        }
        plans.push({ type: 'Concat', index: i, from, c2: from.reduce((a, j) => a + chOf(j), 0), stride: s1 });
        break;
      }
      case 'Detect': {
        if (i !== layers.length - 1) throw new RangeError(`${where}: Detect must be the last layer`);
        const ncArg = args[0] ?? 'nc';
        if (ncArg !== 'nc' && ncArg !== opts.nc) throw new RangeError(`${where}.args[0]: nc ${JSON.stringify(ncArg)} differs from nc ${opts.nc}`);
        const na = opts.anchors[0]!.length / 2;
        if (from.length !== opts.anchors.length) {
          throw new RangeError(`${where}.from: ${from.length} inputs but ${opts.anchors.length} anchor levels`);
        }
        const levels = from.map((j, l) => ({ prefix: `${prefix}.m.${l}`, c1: chOf(j), stride: strideOf(j) }));
        plans.push({ type: 'Detect', index: i, from, c2: na * (opts.nc + 5), stride: s1, nc: opts.nc, na, levels });
        break;
      }
      default:
        throw new RangeError(`${where}.module: ${module} is not supported`);
    }
  });
  return plans;
}

/** State tensors of a Conv module in state_dict order (weight, then BatchNorm). */
export function convParamSpecs(c: ConvPlan): ParamSpec[] {
  const bound = 1 / Math.sqrt(c.c1 * c.k * c.k);
  return [
    { name: `${c.prefix}.conv.weight`, shape: [c.k, c.k, c.c1, c.c2], trainable: true, init: { kind: 'uniform', bound } },
    { name: `${c.prefix}.bn.weight`, shape: [c.c2], trainable: true, init: { kind: 'fill', value: 1 } },
    { name: `${c.prefix}.bn.bias`, shape: [c.c2], trainable: true, init: { kind: 'fill', value: 0 } },
    { name: `${c.prefix}.bn.running_mean`, shape: [c.c2], trainable: false, init: { kind: 'fill', value: 0 } },
    { name: `${c.prefix}.bn.running_var`, shape: [c.c2], trainable: false, init: { kind: 'fill', value: 1 } },
  ];
}

/** State tensors of one planned layer, in ultralytics' state_dict order. */
export function layerParamSpecs(l: LayerPlan): ParamSpec[] {
  switch (l.type) {
    case 'Conv':
      return convParamSpecs(l.conv);
    case 'C3':
      return [l.cv1, l.cv2, l.cv3, ...l.m.flatMap((b) => [b.cv1, b.cv2])].flatMap(convParamSpecs);
    case 'SPPF':
      return [l.cv1, l.cv2].flatMap(convParamSpecs);
    case 'Detect': {
      const no = l.na * (l.nc + 5);
      return l.levels.flatMap((lv) => {
        const bound = 1 / Math.sqrt(lv.c1);
        return [
          { name: `${lv.prefix}.weight`, shape: [1, 1, lv.c1, no], trainable: true, init: { kind: 'uniform', bound } },
          {
            name: `${lv.prefix}.bias`, shape: [no], trainable: true,
            init: { kind: 'detectBias', bound, na: l.na, nc: l.nc, stride: lv.stride },
          },
        ] satisfies ParamSpec[];
      });
    }
    default:
      return [];
  }
}

/** Number of trainable values in a list of specs (what PyTorch's `model.parameters()` counts). */
export function countTrainable(specs: readonly ParamSpec[]): number {
  return specs.reduce((acc, s) => (s.trainable ? acc + s.shape.reduce((a, b) => a * b, 1) : acc), 0);
}
