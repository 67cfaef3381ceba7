import { formatG } from '../log/results-csv.js';
import type { ClassifyBatch } from './loader.js';
import { LABEL_SMOOTHING, smoothedCrossEntropyValues } from './loss.js';
import { accuracyOf, trueClassRanks, type ClassAccuracy } from './metrics.js';

/** What {@link validateClassifier} measures. */
export interface ClassifyValResult {
  images: number;
  top1: number;
  /** 1 by definition with 5 classes or fewer (ultralytics counts the same way). */
  top5: number;
  /** Label-smoothed cross-entropy, mean per image. */
  loss: number;
  perClass: ClassAccuracy[];
  /** Milliseconds per image: waiting for decoded batches, inference, accuracy counting. */
  speed: { preprocess: number; inference: number; postprocess: number };
  /** Input side the images were validated at. */
  imgsz: number;
}

/** Options of {@link validateClassifier}. */
export interface ValidateClassifierOptions {
  /** Label smoothing of the reported loss (default 0.1, the training criterion's, as ultralytics reports it). */
  smoothing?: number;
}

/**
 * Runs `predict` over every batch and measures top-1 and top-5 accuracy (overall and per class) and the
 * loss, as ultralytics' classify/val.py does.
 * @example
 * const r = await validateClassifier((b) => clf.predict(b.images, b.n, b.size, b.size), valLoader.epoch(0), 3);
 */
export async function validateClassifier(
  predict: (batch: ClassifyBatch) => Promise<Float32Array>, batches: AsyncIterable<ClassifyBatch>, nc: number, opts: ValidateClassifierOptions = {},
): Promise<ClassifyValResult> {
  const ranks: number[] = [];
  const labels: number[] = [];
  let loss = 0;
  let size = 0;
  const t = { preprocess: 0, inference: 0, postprocess: 0 };
  let t0 = performance.now();
  for await (const b of batches) {
    const t1 = performance.now();
    const logits = await predict(b);
    const t2 = performance.now();
    for (const r of trueClassRanks(logits, b.labels, nc)) ranks.push(r);
    for (const l of b.labels) labels.push(l);
    for (const v of smoothedCrossEntropyValues(logits, b.labels, nc, opts.smoothing ?? LABEL_SMOOTHING)) loss += v;
    size = b.size;
    const t3 = performance.now();
    t.preprocess += t1 - t0;
    t.inference += t2 - t1;
    t.postprocess += t3 - t2;
    t0 = performance.now();
  }
  const n = labels.length;
  const { all, perClass } = accuracyOf(ranks, labels, nc);
  const per = (ms: number) => (n > 0 ? ms / n : 0);
  return {
    images: n, top1: all.top1, top5: all.top5, loss: n > 0 ? loss / n : 0, perClass, imgsz: size,
    speed: { preprocess: per(t.preprocess), inference: per(t.inference), postprocess: per(t.postprocess) },
  };
}

/** ultralytics' classify/val.py table: `Class Images top1_acc top5_acc`, an `all` row, one row per class, the speed line. */
export function formatClassifyTable(r: ClassifyValResult, names: readonly string[]): string[] {
  const row = (name: string, images: number, top1: number, top5: number) => `${name.padStart(24)}${String(images).padStart(12)}${formatG(top1, 3).padStart(12)}${formatG(top5, 3).padStart(12)}`;
  const s = r.speed;
  return [
    `${'Class'.padStart(24)}${'Images'.padStart(12)}${'top1_acc'.padStart(12)}${'top5_acc'.padStart(12)}`,
    row('all', r.images, r.top1, r.top5),
    ...r.perClass.map((c, i) => row(names[i] ?? `class${i}`, c.images, c.top1, c.top5)),
    `Speed: ${s.preprocess.toFixed(1)}ms pre-process, ${s.inference.toFixed(1)}ms inference, ${s.postprocess.toFixed(1)}ms post-process per image at shape (1, 3, ${r.imgsz}, ${r.imgsz})`,
    ...(names.length <= 5 ? [`top5_acc is 1 by definition with ${names.length} classes (5 or fewer: every class is in the top 5)`] : []),
  ];
}
