/**
 * Detection confidences σ(obj)·σ(cls) of every anchor cell and class, from per-level NHWC logits
 * [N, ny, nx, na·(5+nc)]: what the teacher and the student predict, for the distribution comparison
 * the distillation literature shows (logged as TensorBoard histograms on the first val batch).
 * Cells whose objectness is below `minObj` are left out so the background does not swamp the histogram.
 */
export function classProbabilities(levels: readonly Float32Array[], nc: number, minObj = 0.01): Float32Array {
  const no = 5 + nc;
  const out: number[] = [];
  const sig = (v: number): number => 1 / (1 + Math.exp(-v));
  for (const data of levels) {
    for (let r = 0; r + no <= data.length; r += no) {
      const obj = sig(data[r + 4]!);
      if (obj < minObj) continue;
      for (let c = 0; c < nc; c++) out.push(obj * sig(data[r + 5 + c]!));
    }
  }
  return Float32Array.from(out);
}
