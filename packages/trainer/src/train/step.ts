import * as tf from '../tf.js';
import { yoloLoss, type LossHyp, type YoloLossTerms } from '../loss/yolo-loss.js';
import type { Shard } from '../data/types.js';
import type { DetectionModel } from '../model/types.js';

/**
 * Images per forward/backward pass are capped so the WebAssembly heap (4 GiB at most) holds the
 * tape: training keeps about 2.1 KiB per input pixel on the wasm backend (measured: 870 MiB per
 * 640×640 image for yolov5n), so 1.1 M pixels ≈ 2.3 GiB; at 640 px that is 2 images, at 128 px 67.
 */
export const MICRO_BATCH_PIXELS = 1_100_000;

/** Gradients of one shard's loss by parameter name, and its loss terms [box, obj, cls, ...extra items]. */
export interface ShardGradients {
  grads: Record<string, tf.Tensor>;
  loss: number[];
}

/**
 * A loss added to the YOLO loss of each pass (distillation): given the pass's raw outputs, its YOLO
 * terms and where its images start in the shard, it returns the pass's total loss and extra items to
 * report. Runs inside the gradient tape.
 */
export interface ExtraLoss {
  /** Names of the items it reports, after box, obj and cls. */
  readonly itemNames: readonly string[];
  /** Layers whose outputs the loss reads (feature distillation); they come to `combine` in this order. */
  readonly featureLayers?: readonly number[];
  combine(outs: tf.Tensor4D[], hard: YoloLossTerms, part: Shard, offset: number, features: tf.Tensor4D[]): { total: tf.Scalar; items: tf.Scalar[] };
  /** Frees what it holds, once the shard's passes are done. */
  dispose(): void;
}

/**
 * Forward, YOLOv5 loss and backward for one shard of a batch, on the trainable parameters in
 * `names` order, in micro-batches of at most `maxPixels` input pixels whose gradients are summed
 * (each micro-batch's loss is scaled by its own image count, as a DDP replica's is). The caller owns
 * (and disposes) the returned gradients.
 */
export function shardGradients(
  model: DetectionModel, names: string[], shard: Shard, hyp: LossHyp, maxPixels = MICRO_BATCH_PIXELS, extra?: ExtraLoss,
): ShardGradients {
  const per = imagesPerPass(shard, maxPixels);
  if (shard.n <= per) return passGradients(model, names, shard, hyp, 0, extra);
  let acc: Record<string, tf.Tensor> | undefined;
  const loss = new Array<number>(3 + (extra?.itemNames.length ?? 0)).fill(0);
  for (const [j, part] of splitShard(shard, per).entries()) {
    const r = passGradients(model, names, part, hyp, j * per, extra);
    r.loss.forEach((v, k) => { loss[k] += (v * part.n) / shard.n; });
    acc = acc ? sumGradients(names, acc, r.grads) : r.grads;
  }
  return { grads: acc!, loss };
}

/** a + b per parameter; both inputs are disposed. */
export function sumGradients(names: readonly string[], a: Record<string, tf.Tensor>, b: Record<string, tf.Tensor>): Record<string, tf.Tensor> {
  const sum = tf.tidy(() => Object.fromEntries(names.map((n) => [n, a[n].add(b[n])])));
  tf.dispose([...Object.values(a), ...Object.values(b)]);
  return sum;
}

function imagesPerPass(shard: Shard, maxPixels: number): number {
  return Math.max(1, Math.floor(maxPixels / (shard.height * shard.width)));
}

/** How many forward/backward passes {@link shardGradients} makes for a shard. */
export function microBatches(shard: Shard, maxPixels = MICRO_BATCH_PIXELS): number {
  return Math.ceil(shard.n / imagesPerPass(shard, maxPixels));
}

/** Consecutive parts of at most `per` images, with target rows renumbered. */
export function splitShard(shard: Shard, per: number): Shard[] {
  const px = shard.height * shard.width * 3;
  const parts: Shard[] = [];
  for (let start = 0; start < shard.n; start += per) {
    const n = Math.min(per, shard.n - start);
    const rows: number[] = [];
    for (let k = 0; k < shard.nTargets; k++) {
      const img = shard.targets[k * 6];
      if (img >= start && img < start + n) rows.push(img - start, ...shard.targets.subarray(k * 6 + 1, k * 6 + 6));
    }
    parts.push({
      images: shard.images.subarray(start * px, (start + n) * px), n, height: shard.height, width: shard.width,
      targets: Float32Array.from(rows), nTargets: rows.length / 6,
    });
  }
  return parts;
}

function passGradients(model: DetectionModel, names: string[], shard: Shard, hyp: LossHyp, offset: number, extra?: ExtraLoss): ShardGradients {
  const vars = names.map((n) => model.params.get(n)!);
  const items: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const x = tf.tensor4d(shard.images, [shard.n, shard.height, shard.width, 3]);
    const { levels: outs, features } = model.forwardFeatures(x, true, extra?.featureLayers ?? []);
    const terms = yoloLoss(outs, shard.targets, shard.nTargets, model, hyp);
    items.push(tf.keep(terms.box), tf.keep(terms.obj), tf.keep(terms.cls));
    if (!extra) return terms.total;
    const r = extra.combine(outs, terms, shard, offset, features);
    items.push(...r.items.map((t) => tf.keep(t)));
    return r.total;
  }, vars);
  const named: Record<string, tf.Tensor> = {};
  names.forEach((n, k) => { named[n] = grads[vars[k].name]; });
  const loss = items.map((t) => t.dataSync()[0]!);
  tf.dispose([value, ...items]);
  return { grads: named, loss };
}
