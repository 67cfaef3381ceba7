import type { TeacherLevel } from './yolo-kd.js';

/** Ground truth for an imitation mask: the YOLO batch's targets (Shard.targets). */
export interface GtMaskInput {
  /** Rows of [image, cls, cx, cy, w, h], normalised 0..1 to the batch image. */
  targets: Float32Array;
  nTargets: number;
  /**
   * This feature level's anchors in pixels [w0, h0, …] with the batch image size [height, width]:
   * given both, the mask is the paper's anchor-IoU rule; otherwise the cells a box covers, dilated by 1.
   */
  anchors?: number[];
  imageSize?: [number, number];
  /** ψ of the anchor-IoU rule (default 0.5, as the paper). */
  psi?: number;
}

/**
 * The imitation mask of Wang et al. 2019 (§3.1) on an n×h×w grid, 1 near objects and 0 elsewhere,
 * as [n·h·w] row-major. With anchors: for each box, the IoU of every anchor at every cell (anchors
 * centred on cell centres), M = the largest, and the cells with an anchor whose IoU > ψ·M; the union
 * over boxes. Without anchors: the cells a box overlaps, grown by one cell on every side.
 */
export function gtImitationMask(n: number, h: number, w: number, gt: GtMaskInput): Float32Array {
  const { targets, nTargets } = gt;
  if (targets.length < nTargets * 6) throw new RangeError(`gt.targets: expected ${nTargets}·6 values, got ${targets.length}`);
  const psi = gt.psi ?? 0.5;
  if (!(psi >= 0 && psi <= 1)) throw new RangeError(`gt.psi: expected a number in [0, 1], got ${String(gt.psi)}`);
  const mask = new Float32Array(n * h * w);
  let anchors: number[] | undefined;
  if (gt.anchors !== undefined) {
    if (gt.imageSize === undefined) throw new RangeError('gt.imageSize: required with gt.anchors (anchors are in pixels)');
    const [ih, iw] = gt.imageSize;
    if (gt.anchors.length < 2 || gt.anchors.length % 2 !== 0) throw new RangeError(`gt.anchors: expected [w0, h0, w1, h1, …], got ${gt.anchors.length} values`);
    // Anchors in cells of this grid.
    anchors = gt.anchors.map((v, k) => (k % 2 === 0 ? v * w / iw : v * h / ih));
  }
  for (let t = 0; t < nTargets; t++) {
    const b = targets[t * 6];
    if (!(Number.isInteger(b) && b >= 0 && b < n)) throw new RangeError(`gt.targets: row ${t} names image ${b}, not in 0..${n - 1}`);
    const gx = targets[t * 6 + 2] * w;
    const gy = targets[t * 6 + 3] * h;
    const gw = targets[t * 6 + 4] * w;
    const gh = targets[t * 6 + 5] * h;
    const base = b * h * w;
    if (anchors === undefined) {
      // Cells floor(x1)..ceil(x2)−1 overlap the box; one more on each side is the dilation.
      const x0 = clamp(Math.floor(gx - gw / 2) - 1, 0, w - 1);
      const x1 = clamp(Math.ceil(gx + gw / 2), 0, w - 1);
      const y0 = clamp(Math.floor(gy - gh / 2) - 1, 0, h - 1);
      const y1 = clamp(Math.ceil(gy + gh / 2), 0, h - 1);
      for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) mask[base + y * w + x] = 1;
      continue;
    }
    markByAnchorIou(mask, base, h, w, anchors, [gx, gy, gw, gh], psi);
  }
  return mask;
}

function markByAnchorIou(mask: Float32Array, base: number, h: number, w: number, anchors: number[], box: number[], psi: number): void {
  const [gx, gy, gw, gh] = box;
  const na = anchors.length / 2;
  let maxAw = 0;
  let maxAh = 0;
  for (let a = 0; a < na; a++) {
    maxAw = Math.max(maxAw, anchors[2 * a]);
    maxAh = Math.max(maxAh, anchors[2 * a + 1]);
  }
  // Only anchors whose centre lies within half their size plus half the box's can overlap it.
  const x0 = clamp(Math.floor(gx - (gw + maxAw) / 2 - 0.5), 0, w - 1);
  const x1 = clamp(Math.ceil(gx + (gw + maxAw) / 2 - 0.5), 0, w - 1);
  const y0 = clamp(Math.floor(gy - (gh + maxAh) / 2 - 0.5), 0, h - 1);
  const y1 = clamp(Math.ceil(gy + (gh + maxAh) / 2 - 0.5), 0, h - 1);
  const cw = x1 - x0 + 1;
  const best = new Float32Array((y1 - y0 + 1) * cw);
  let m = 0;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      let cell = 0;
      for (let a = 0; a < na; a++) cell = Math.max(cell, iou(x + 0.5, y + 0.5, anchors[2 * a], anchors[2 * a + 1], gx, gy, gw, gh));
      best[(y - y0) * cw + x - x0] = cell;
      m = Math.max(m, cell);
    }
  }
  if (m <= 0) return;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) if (best[(y - y0) * cw + x - x0] > psi * m) mask[base + y * w + x] = 1;
  }
}

function iou(ax: number, ay: number, aw: number, ah: number, bx: number, by: number, bw: number, bh: number): number {
  const iw = Math.min(ax + aw / 2, bx + bw / 2) - Math.max(ax - aw / 2, bx - bw / 2);
  const ih = Math.min(ay + ah / 2, by + bh / 2) - Math.max(ay - ah / 2, by - bh / 2);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  return inter / (aw * ah + bw * bh - inter);
}

/**
 * A soft imitation mask from the teacher's detection logits on the same grid: per cell, the largest
 * over anchors of σ(obj)·max σ(cls) (the teacher's detection score), as [n·ny·nx].
 */
export function teacherScoreMask(level: TeacherLevel, n: number, na: number): Float32Array {
  const cellsXY = n * level.ny * level.nx;
  const no = level.data.length / (cellsXY * na);
  if (!Number.isInteger(no) || no < 6) {
    throw new RangeError(`level: ${level.data.length} values are not ${n}·${level.ny}·${level.nx} cells × ${na} anchors × (5 + nc)`);
  }
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  const out = new Float32Array(cellsXY);
  for (let c = 0; c < cellsXY; c++) {
    let best = 0;
    for (let a = 0; a < na; a++) {
      const r = (c * na + a) * no;
      let cls = -Infinity;
      for (let k = 5; k < no; k++) cls = Math.max(cls, level.data[r + k]);
      best = Math.max(best, sig(level.data[r + 4]) * sig(cls));
    }
    out[c] = best;
  }
  return out;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
