/** Accuracy of one class (or of all images). */
export interface ClassAccuracy {
  images: number;
  top1: number;
  top5: number;
}

/**
 * Rank of the true class among each image's logits (0 = the highest), ties broken by class index as a
 * stable descending sort breaks them: top-k is correct when the rank is below k.
 */
export function trueClassRanks(logits: ArrayLike<number>, labels: ArrayLike<number>, nc: number): Int32Array {
  const n = labels.length;
  if (logits.length !== n * nc) throw new RangeError(`logits: expected ${n}·${nc} values, got ${logits.length}`);
  const ranks = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * nc;
    const t = labels[i]!;
    if (!(Number.isInteger(t) && t >= 0 && t < nc)) throw new RangeError(`labels[${i}]: ${t} is not a class index in 0..${nc - 1}`);
    const z = logits[o + t]!;
    let r = 0;
    for (let c = 0; c < nc; c++) {
      const v = logits[o + c]!;
      if (v > z || (v === z && c < t)) r++;
    }
    ranks[i] = r;
  }
  return ranks;
}

/**
 * Top-1 and top-5 accuracy over all images and per class, as ultralytics' classify/val.py counts them:
 * the true class among the first 5 of the sorted logits. With 5 classes or fewer every class is among
 * them, so top-5 is 1 by definition.
 */
export function accuracyOf(ranks: ArrayLike<number>, labels: ArrayLike<number>, nc: number): { all: ClassAccuracy; perClass: ClassAccuracy[] } {
  const perClass = Array.from({ length: nc }, () => ({ images: 0, top1: 0, top5: 0 }));
  let top1 = 0;
  let top5 = 0;
  for (let i = 0; i < labels.length; i++) {
    const c = perClass[labels[i]!]!;
    const r = ranks[i]!;
    c.images++;
    if (r < 1) { c.top1++; top1++; }
    if (r < 5) { c.top5++; top5++; }
  }
  const n = labels.length;
  for (const c of perClass) {
    if (c.images > 0) { c.top1 /= c.images; c.top5 /= c.images; }
  }
  return { all: { images: n, top1: n > 0 ? top1 / n : 0, top5: n > 0 ? top5 / n : 0 }, perClass };
}
