/**
 * Lowest probability the logit is recovered from; 1 − P_MIN is the highest. A sigmoid output in
 * float32 saturates at exactly 1.0 once the logit passes about 16.6 (1 − 2⁻²⁴ is the last value
 * below 1), and near 1 its spacing of 6e-8 leaves the logit poorly determined long before that; so
 * ln(p/(1−p)) is taken of p clamped to [1e-6, 1 − 1e-6], i.e. recovered logits lie in ±13.8155.
 * Both ends are clamped alike so that a distillation target never depends on which side saturated.
 */
export const P_MIN = 1e-6;

/** Largest magnitude a recovered logit can have: ln((1 − P_MIN) / P_MIN) ≈ 13.8155. */
export const LOGIT_LIMIT = Math.log((1 - P_MIN) / P_MIN);

/** ln(p/(1−p)) of p clamped to [P_MIN, 1 − P_MIN] (NaN stays NaN, so a broken teacher shows). */
export function clampedLogit(p: number): number {
  // Returning the limit itself keeps the two ends exactly symmetric (1 − 1e-6 is inexact in binary).
  if (p <= P_MIN) return -LOGIT_LIMIT;
  if (p >= 1 - P_MIN) return LOGIT_LIMIT;
  return Math.log(p / (1 - p));
}

/** Where one level of a YOLOv5 head sits and what it is made of. */
export interface HeadLevelGeometry {
  ny: number;
  nx: number;
  stride: number;
  /** Pixel anchors [w0, h0, w1, h1, …]. */
  anchors: readonly number[];
}

/**
 * Inverts ultralytics' decode for `m` images of a decoded `output0` [m, A, 5+nc] (rows ordered level,
 * anchor, y, x) and writes the logits into the NHWC level buffers `out[l]` ([N, ny, nx, na·(5+nc)])
 * starting at image `b0`. Per channel: obj/cls σ = p; xy σ = (xy/stride − cell + 0.5)/2; wh σ =
 * √(wh/anchor)/2; then {@link clampedLogit}. Arithmetic is in float64 so the inversion adds no
 * rounding of its own to what float32 decoding already lost.
 */
export function invertDecoded(
  decoded: Float32Array, m: number, nc: number, levels: readonly HeadLevelGeometry[], out: Float32Array[], b0: number,
): void {
  const no = nc + 5;
  let rows = 0;
  for (const lv of levels) rows += (lv.anchors.length / 2) * lv.ny * lv.nx;
  if (decoded.length < m * rows * no) throw new RangeError(`decoded: ${decoded.length} values for ${m}×${rows}×${no}`);
  for (let b = 0; b < m; b++) {
    let row = b * rows;
    levels.forEach((lv, l) => {
      const na = lv.anchors.length / 2;
      const dst = out[l]!;
      const { ny, nx, stride } = lv;
      for (let a = 0; a < na; a++) {
        const aw = lv.anchors[2 * a]!;
        const ah = lv.anchors[2 * a + 1]!;
        for (let y = 0; y < ny; y++) {
          for (let x = 0; x < nx; x++, row++) {
            const s = row * no;
            const d = (((b0 + b) * ny + y) * nx + x) * na * no + a * no;
            dst[d] = clampedLogit((decoded[s]! / stride - x + 0.5) / 2);
            dst[d + 1] = clampedLogit((decoded[s + 1]! / stride - y + 0.5) / 2);
            dst[d + 2] = clampedLogit(Math.sqrt(Math.max(decoded[s + 2]! / aw, 0)) / 2);
            dst[d + 3] = clampedLogit(Math.sqrt(Math.max(decoded[s + 3]! / ah, 0)) / 2);
            for (let k = 4; k < no; k++) dst[d + k] = clampedLogit(decoded[s + k]!);
          }
        }
      }
    });
  }
}

/**
 * Transposes `m` images of one raw head level [m, na, ny, nx, no] (ultralytics' layout) into the NHWC
 * buffer `out` ([N, ny, nx, na·no]) starting at image `b0`.
 */
export function rawLevelToNhwc(raw: Float32Array, m: number, na: number, ny: number, nx: number, no: number, out: Float32Array, b0: number): void {
  if (raw.length < m * na * ny * nx * no) throw new RangeError(`raw: ${raw.length} values for ${m}×${na}×${ny}×${nx}×${no}`);
  for (let b = 0; b < m; b++) {
    for (let a = 0; a < na; a++) {
      for (let y = 0; y < ny; y++) {
        for (let x = 0; x < nx; x++) {
          const s = (((b * na + a) * ny + y) * nx + x) * no;
          const d = (((b0 + b) * ny + y) * nx + x) * na * no + a * no;
          for (let k = 0; k < no; k++) out[d + k] = raw[s + k]!;
        }
      }
    }
  }
}
