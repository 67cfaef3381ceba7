import * as tf from '../tf.js';
import type { DetectionModel } from '../model/types.js';
import type { SourceWeights } from './source-weights.js';

/** What {@link transferWeights} did, counted as ultralytics counts state_dict items. */
export interface TransferReport {
  transferred: number;
  total: number;
  /** Items of the model that kept their fresh initialisation (other shape or absent in the source). */
  skipped: string[];
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Copies every tensor of `src` whose name and shape match one of the model's, as ultralytics'
 * `intersect_dicts`; the rest keep their fresh values (a Detect head of another class count keeps its
 * bias prior). The count covers what PyTorch's state_dict holds, BatchNorm's `num_batches_tracked` and
 * the Detect `anchors` buffer included, so `Transferred 343/349 items` reads as it does in ultralytics.
 */
export function transferWeights(model: DetectionModel, src: SourceWeights): TransferReport {
  let transferred = 0;
  const skipped: string[] = [];
  const vars = [...model.params, ...model.buffers];
  for (const [name, v] of vars) {
    const t = src.tensors.get(name);
    if (t === undefined || !sameShape(t.shape, v.shape)) {
      skipped.push(name);
      continue;
    }
    tf.tidy(() => v.assign(tf.tensor(t.data, v.shape)));
    transferred++;
  }
  // State PyTorch keeps and kd-edge does not: one step counter per BatchNorm, the anchors buffer.
  const counters = vars.filter(([n]) => n.endsWith('.bn.running_var')).map(([n]) => n.replace(/running_var$/, 'num_batches_tracked'));
  const detect = vars.map(([n]) => /^(model\.\d+)\.m\.0\.weight$/.exec(n)?.[1]).find((p) => p !== undefined);
  const extra = [...counters, ...(detect ? [`${detect}.anchors`] : [])];
  const anchorsShape = [model.nl, model.anchors[0]!.length / 2, 2];
  for (const name of extra) {
    const t = src.tensors.get(name);
    const fits = t !== undefined && (name.endsWith('.anchors') ? sameShape(t.shape, anchorsShape) : true);
    if (fits) transferred++;
    else skipped.push(name);
  }
  return { transferred, total: vars.length + extra.length, skipped };
}
