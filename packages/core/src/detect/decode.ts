/** Raw head output of one YOLOv5 detection level, NHWC. */
export interface YoloHeadLevel {
  /** Logits, layout [N, ny, nx, na·(5+nc)], channel = anchor·(5+nc) + k. */
  data: Float32Array;
  /** Grid height. */
  ny: number;
  /** Grid width. */
  nx: number;
  /** Stride of the level in input pixels (8, 16, 32 for P3–P5). */
  stride: number;
  /** Pixel anchors flattened [w0, h0, w1, h1, …]; na = anchors.length / 2. */
  anchors: readonly number[];
}

/** Number of decoded rows per image for the given levels: Σ na·ny·nx (25200 for 640 px). */
export function decodedRowCount(levels: readonly Pick<YoloHeadLevel, 'ny' | 'nx' | 'anchors'>[]): number {
  let rows = 0;
  for (const l of levels) rows += (l.anchors.length / 2) * l.ny * l.nx;
  return rows;
}

/**
 * Decodes YOLOv5 head logits the way ultralytics `Detect` does at inference: σ on every channel,
 * `xy = (2σ − 0.5 + grid)·stride`, `wh = (2σ)²·anchor`. Returns [batch, rows, 5+nc] with rows
 * [cx, cy, w, h, obj, cls…] in input pixels, ordered level, anchor, y, x (the `output0` order);
 * image b occupies `subarray(b·rows·(5+nc), (b+1)·rows·(5+nc))`.
 * @example
 * const out = decodeYoloOutputs([{ data, ny: 80, nx: 80, stride: 8, anchors: [10, 13, 16, 30, 33, 23] }, …], 1, 80);
 */
export function decodeYoloOutputs(levels: readonly YoloHeadLevel[], batch: number, nc: number): Float32Array {
  if (!Number.isInteger(nc) || nc < 1) throw new RangeError(`nc must be a positive integer, got ${nc}`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
  const no = 5 + nc;
  for (const [i, l] of levels.entries()) {
    if (l.anchors.length === 0 || l.anchors.length % 2 !== 0) {
      throw new RangeError(`levels[${i}].anchors must hold [w, h] pairs, got ${l.anchors.length} values`);
    }
    const expected = batch * l.ny * l.nx * (l.anchors.length / 2) * no;
    if (l.data.length !== expected) {
      throw new RangeError(
        `levels[${i}].data has ${l.data.length} values, expected ${expected} = ${batch}·${l.ny}·${l.nx}·${l.anchors.length / 2}·${no}`,
      );
    }
  }
  const rows = decodedRowCount(levels);
  const out = new Float32Array(batch * rows * no);

  let levelRow = 0;
  for (const { data, ny, nx, stride, anchors } of levels) {
    const na = anchors.length / 2;
    const cells = ny * nx;
    let src = 0;
    // Walk the input in memory order (y, x, anchor, channel); each anchor's row lands at a stride of `cells` rows.
    for (let b = 0; b < batch; b++) {
      const imageBase = (b * rows + levelRow) * no;
      for (let y = 0; y < ny; y++) {
        for (let x = 0; x < nx; x++) {
          const cell = y * nx + x;
          for (let a = 0; a < na; a++) {
            let dst = imageBase + (a * cells + cell) * no;
            const sx = 1 / (1 + Math.exp(-data[src]));
            const sy = 1 / (1 + Math.exp(-data[src + 1]));
            const sw = 2 / (1 + Math.exp(-data[src + 2]));
            const sh = 2 / (1 + Math.exp(-data[src + 3]));
            out[dst] = (sx * 2 - 0.5 + x) * stride;
            out[dst + 1] = (sy * 2 - 0.5 + y) * stride;
            out[dst + 2] = sw * sw * anchors[2 * a];
            out[dst + 3] = sh * sh * anchors[2 * a + 1];
            src += 4;
            dst += 4;
            for (let k = 4; k < no; k++) out[dst++] = 1 / (1 + Math.exp(-data[src++]));
          }
        }
      }
    }
    levelRow += na * cells;
  }
  return out;
}
