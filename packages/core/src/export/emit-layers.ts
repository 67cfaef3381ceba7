import type { ModelWeights } from '../model/description.js';
import type { ConvPlan, LayerPlan } from '../model/plan.js';
import { foldConvBn } from './fold-bn.js';
import { int, ints, type GraphBuilder } from './graph-builder.js';

/** `model.2.m.0.cv1` → `/model.2/m.0/cv1`, the scope torch.onnx gives the same module. */
export function scopeOf(prefix: string): string {
  return '/' + prefix.split(/\.(?=[a-z])/i).join('/');
}

/** Conv module: fused Conv (+ SiLU as Sigmoid·Mul, the way torch.onnx exports nn.SiLU). */
export function emitConv(g: GraphBuilder, w: ModelWeights, c: ConvPlan, x: string): string {
  const scope = scopeOf(c.prefix);
  const f = foldConvBn(w, c);
  const W = g.float(`${c.prefix}.conv.weight`, f.dims, f.weight);
  const B = g.float(`${c.prefix}.conv.bias`, [c.c2], f.bias);
  const y = g.op('Conv', [x, W, B], `${scope}/conv/Conv`, {
    dilations: ints([1, 1]),
    group: int(1),
    kernel_shape: ints([c.k, c.k]),
    pads: ints([c.p, c.p, c.p, c.p]),
    strides: ints([c.s, c.s]),
  });
  if (!c.act) return y;
  const s = g.op('Sigmoid', [y], `${scope}/act/Sigmoid`);
  return g.op('Mul', [y, s], `${scope}/act/Mul`);
}

/**
 * Emits one planned layer (all but Detect) and returns its output tensor. `inputs` are the output
 * tensors of the layer's `from` entries.
 */
export function emitLayer(g: GraphBuilder, w: ModelWeights, l: LayerPlan, inputs: string[]): string {
  const scope = `/model.${l.index}`;
  switch (l.type) {
    case 'Conv':
      return emitConv(g, w, l.conv, inputs[0]!);
    case 'C3': {
      let y = emitConv(g, w, l.cv1, inputs[0]!);
      for (const b of l.m) {
        const t = emitConv(g, w, b.cv2, emitConv(g, w, b.cv1, y));
        y = b.add ? g.op('Add', [y, t], `${scopeOf(b.cv1.prefix.replace(/\.cv1$/, ''))}/Add`) : t;
      }
      const y2 = emitConv(g, w, l.cv2, inputs[0]!);
      const cat = g.op('Concat', [y, y2], `${scope}/Concat`, { axis: int(1) });
      return emitConv(g, w, l.cv3, cat);
    }
    case 'SPPF': {
      const x = emitConv(g, w, l.cv1, inputs[0]!);
      const pool = (t: string): string =>
        g.op('MaxPool', [t], `${scope}/m/MaxPool`, {
          ceil_mode: int(0),
          kernel_shape: ints([l.k, l.k]),
          pads: ints(Array(4).fill(Math.floor(l.k / 2))),
          strides: ints([1, 1]),
        });
      const y1 = pool(x);
      const y2 = pool(y1);
      const y3 = pool(y2);
      return emitConv(g, w, l.cv2, g.op('Concat', [x, y1, y2, y3], `${scope}/Concat`, { axis: int(1) }));
    }
    case 'Upsample': {
      // Nearest, asymmetric, floor: what nn.Upsample(scale_factor, 'nearest') exports and tfjs computes.
      const scales = g.floats([1, 1, l.scale, l.scale]);
      return g.op('Resize', [inputs[0]!, '', scales], `${scope}/Resize`, {
        coordinate_transformation_mode: 'asymmetric',
        cubic_coeff_a: { float: -0.75 },
        mode: 'nearest',
        nearest_mode: 'floor',
      });
    }
    case 'Concat':
      return g.op('Concat', inputs, `${scope}/Concat`, { axis: int(1) });
    case 'Detect':
      throw new RangeError('emitLayer: Detect is emitted by the head exporter');
    default:
      throw new RangeError(`emitLayer: unknown layer type ${(l as { type: string }).type}`);
  }
}
