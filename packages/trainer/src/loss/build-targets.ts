/**
 * YOLOv5 target assignment (ultralytics utils/loss.py build_targets), done on the CPU from label
 * rows: the labels are known before the step, so no tensor round trip is needed.
 */

/** Targets matched to one detection level. */
export interface LevelTargets {
  /** Number of (target, anchor, cell) matches. */
  n: number;
  /** Flat row index into the level's predictions reshaped to [N*ny*nx*na, 5+nc]. */
  rows: Int32Array;
  /** Box targets [n, 4]: xy offset in the cell (-0.5..1.5) and wh, in grid units. */
  tbox: Float32Array;
  /** Anchor wh in grid units [n, 2]. */
  anchors: Float32Array;
  /** Class id per match. */
  tcls: Int32Array;
  /**
   * Positions whose objectness target is set: ultralytics writes `tobj[b, a, gj, gi] = iou` in match
   * order, so the last match at a cell wins. `objRows` are the distinct rows, `objFrom` the match
   * that wins each one.
   */
  objRows: Int32Array;
  objFrom: Int32Array;
}

/** Geometry of one level's prediction grid. */
export interface LevelGrid {
  ny: number;
  nx: number;
  stride: number;
  /** Pixel anchors [w0, h0, w1, h1, ...]. */
  anchors: number[];
}

// Offsets of the centre cell and the four neighbours, times g = 0.5 (ultralytics `off`).
const OFFSETS: ReadonlyArray<readonly [number, number]> = [[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]];
const G = 0.5;

/**
 * Assigns targets to anchors and grid cells for every level.
 * @param targets rows of [image, cls, cx, cy, w, h], normalised to the batch image.
 * @param anchorT the wh ratio limit (`anchor_t`, 4.0 by default).
 */
export function buildTargets(
  targets: Float32Array,
  nTargets: number,
  levels: LevelGrid[],
  anchorT: number,
): LevelTargets[] {
  return levels.map((lv) => buildLevel(targets, nTargets, lv, anchorT));
}

function buildLevel(targets: Float32Array, nt: number, lv: LevelGrid, anchorT: number): LevelTargets {
  const na = lv.anchors.length / 2;
  const { nx, ny } = lv;
  // Matches in ultralytics order: offset group, then anchor, then target.
  const base: { t: number; a: number; gx: number; gy: number; gw: number; gh: number }[] = [];
  for (let a = 0; a < na; a++) {
    const aw = lv.anchors[2 * a] / lv.stride;
    const ah = lv.anchors[2 * a + 1] / lv.stride;
    for (let t = 0; t < nt; t++) {
      const gw = targets[t * 6 + 4] * nx;
      const gh = targets[t * 6 + 5] * ny;
      const rw = gw / aw;
      const rh = gh / ah;
      if (Math.max(rw, 1 / rw, rh, 1 / rh) < anchorT) {
        base.push({ t, a, gx: targets[t * 6 + 2] * nx, gy: targets[t * 6 + 3] * ny, gw, gh });
      }
    }
  }
  const rows: number[] = [];
  const tbox: number[] = [];
  const anch: number[] = [];
  const tcls: number[] = [];
  for (let o = 0; o < OFFSETS.length; o++) {
    for (const m of base) {
      const gxi = nx - m.gx;
      const gyi = ny - m.gy;
      let use: boolean;
      switch (o) {
        case 0: use = true; break;
        case 1: use = m.gx % 1 < G && m.gx > 1; break;
        case 2: use = m.gy % 1 < G && m.gy > 1; break;
        case 3: use = gxi % 1 < G && gxi > 1; break;
        default: use = gyi % 1 < G && gyi > 1; break;
      }
      if (!use) continue;
      // (gxy - offsets).long() truncates toward zero; values are positive here, then clamped.
      const gi = clamp(Math.trunc(m.gx - OFFSETS[o][0] * G), 0, nx - 1);
      const gj = clamp(Math.trunc(m.gy - OFFSETS[o][1] * G), 0, ny - 1);
      const b = targets[m.t * 6];
      rows.push(((b * ny + gj) * nx + gi) * na + m.a);
      tbox.push(m.gx - gi, m.gy - gj, m.gw, m.gh);
      anch.push(lv.anchors[2 * m.a] / lv.stride, lv.anchors[2 * m.a + 1] / lv.stride);
      tcls.push(targets[m.t * 6 + 1]);
    }
  }
  const last = new Map<number, number>();
  rows.forEach((r, i) => last.set(r, i));
  return {
    n: rows.length,
    rows: Int32Array.from(rows),
    tbox: Float32Array.from(tbox),
    anchors: Float32Array.from(anch),
    tcls: Int32Array.from(tcls),
    objRows: Int32Array.from(last.keys()),
    objFrom: Int32Array.from(last.values()),
  };
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
