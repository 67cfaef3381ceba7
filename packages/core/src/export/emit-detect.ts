import type { ModelWeights } from '../model/description.js';
import type { LayerPlan } from '../model/plan.js';
import { DataType } from '../onnx/types.js';
import { takeWeight, toOihw } from './fold-bn.js';
import { int, ints, type GraphBuilder } from './graph-builder.js';

type DetectPlan = Extract<LayerPlan, { type: 'Detect' }>;

/** Shapes the head is exported for: numbers when static, undefined for a dynamic axis. */
export interface HeadShapes {
  batch: number | undefined;
  /** Per level [ny, nx], or undefined when height and width are dynamic. */
  grids: [number, number][] | undefined;
}

/** `/model.24/m.0/Conv` then `[N, na, ny, nx, no]` as ultralytics' Detect reshapes and permutes it. */
function levelLogits(g: GraphBuilder, w: ModelWeights, d: DetectPlan, l: number, x: string, shapes: HeadShapes): string {
  const lv = d.levels[l]!;
  const no = d.nc + 5;
  const cout = d.na * no;
  const scope = `/model.${d.index}/m.${l}`;
  const W = g.float(`${lv.prefix}.weight`, [cout, lv.c1, 1, 1], toOihw(takeWeight(w, `${lv.prefix}.weight`, lv.c1 * cout), 1, lv.c1, cout));
  const B = g.float(`${lv.prefix}.bias`, [cout], Float32Array.from(takeWeight(w, `${lv.prefix}.bias`, cout)));
  const conv = g.op('Conv', [x, W, B], `${scope}/Conv`, {
    dilations: ints([1, 1]), group: int(1), kernel_shape: ints([1, 1]), pads: ints([0, 0, 0, 0]), strides: ints([1, 1]),
  });
  let five: string;
  if (shapes.grids !== undefined) {
    const [ny, nx] = shapes.grids[l]!;
    five = g.op('Reshape', [conv, g.int64s([shapes.batch ?? -1, d.na, no, ny, nx])], `/model.${d.index}/Reshape`);
  } else {
    // [N, C, ny, nx] → [N, 1, C, ny, nx]: a 0 in Reshape's shape copies the input's dim at that index,
    // so batch, ny and nx pass through without being known.
    const u = g.op('Unsqueeze', [conv, g.int64s([1])], `/model.${d.index}/Unsqueeze`);
    five = g.op('Reshape', [u, g.int64s([0, d.na, -1, 0, 0])], `/model.${d.index}/Reshape`);
  }
  return g.op('Transpose', [five], `/model.${d.index}/Transpose`, { perm: ints([0, 1, 3, 4, 2]) });
}

/** Grid offsets minus 0.5, [1, 1, ny, nx, 2] with (x, y) last, as ultralytics' `_make_grid`. */
function gridTensor(g: GraphBuilder, d: DetectPlan, l: number, logits: string, shapes: HeadShapes): string {
  if (shapes.grids !== undefined) {
    const [ny, nx] = shapes.grids[l]!;
    const v = new Float32Array(ny * nx * 2);
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        v[(y * nx + x) * 2] = x - 0.5;
        v[(y * nx + x) * 2 + 1] = y - 0.5;
      }
    }
    return g.float(`/model.${d.index}/grid.${l}`, [1, 1, ny, nx, 2], v);
  }
  const scope = `/model.${d.index}/grid.${l}`;
  const shape = g.op('Shape', [logits], `${scope}/Shape`);
  const axis = (i: number): string => {
    const dim = g.op('Gather', [shape, g.int64s([i], [])], `${scope}/Gather`, { axis: int(0) });
    const r = g.op('Range', [g.int64s([0], []), dim, g.int64s([1], [])], `${scope}/Range`);
    return g.op('Cast', [r], `${scope}/Cast`, { to: int(DataType.FLOAT) });
  };
  const gy = g.op('Reshape', [axis(2), g.int64s([1, 1, -1, 1, 1])], `${scope}/Reshape`);
  const gx = g.op('Reshape', [axis(3), g.int64s([1, 1, 1, -1, 1])], `${scope}/Reshape`);
  const zero = g.floats([0], []);
  const gxx = g.op('Add', [gx, g.op('Mul', [gy, zero], `${scope}/Mul`)], `${scope}/Add`);
  const gyy = g.op('Add', [gy, g.op('Mul', [gx, zero], `${scope}/Mul`)], `${scope}/Add`);
  const xy = g.op('Concat', [gxx, gyy], `${scope}/Concat`, { axis: int(4) });
  return g.op('Sub', [xy, g.floats([0.5], [])], `${scope}/Sub`);
}

/**
 * Emits the Detect head. Decoded (default): sigmoid, xy = (2σ − 0.5 + grid)·stride,
 * wh = (2σ)²·anchor, rows [cx, cy, w, h, obj, cls…] concatenated over levels into [N, A, 5+nc], exactly
 * ultralytics YOLOv5's inference output. Raw: the per-level logits [N, na, ny, nx, 5+nc].
 */
export function emitDetect(
  g: GraphBuilder, w: ModelWeights, d: DetectPlan, anchors: number[][], inputs: string[], shapes: HeadShapes, raw: boolean,
): string[] {
  const no = d.nc + 5;
  const logits = inputs.map((x, l) => levelLogits(g, w, d, l, x, shapes));
  if (raw) return logits;
  const scope = `/model.${d.index}`;
  const rows = logits.map((t, l) => {
    const stride = d.levels[l]!.stride;
    const s = g.op('Sigmoid', [t], `${scope}/Sigmoid`);
    const [xy0, wh0, conf] = g.node('Split', [s, g.int64s([2, 2, d.nc + 1])], `${scope}/Split`, { axis: int(4) }, 3) as [string, string, string];
    const two = g.floats([2], []);
    const grid = gridTensor(g, d, l, t, shapes);
    const xy1 = g.op('Add', [g.op('Mul', [xy0, two], `${scope}/Mul`), grid], `${scope}/Add`);
    const xy = g.op('Mul', [xy1, g.floats([stride], [])], `${scope}/Mul`);
    const wh1 = g.op('Mul', [wh0, two], `${scope}/Mul`);
    // (2σ)² as a product rather than Pow: the same value, and friendlier to every runtime's fusions.
    const wh2 = g.op('Mul', [wh1, wh1], `${scope}/Mul`);
    const anchorGrid = g.float(`${scope}/anchor_grid.${l}`, [1, d.na, 1, 1, 2], Float32Array.from(anchors[l]!));
    const wh = g.op('Mul', [wh2, anchorGrid], `${scope}/Mul`);
    const cat = g.op('Concat', [xy, wh, conf], `${scope}/Concat`, { axis: int(4) });
    return g.op('Reshape', [cat, g.int64s([shapes.batch ?? 0, -1, no])], `${scope}/Reshape`);
  });
  return [rows.length === 1 ? rows[0]! : g.op('Concat', rows, `${scope}/Concat`, { axis: int(1) })];
}
