import * as tf from '../tf.js';
import { yoloLoss, type LossHyp } from '../loss/yolo-loss.js';
import type { DetectionModel } from '../model/types.js';
import type { Shard } from './data-parallel.js';

/** Gradients of one shard's loss by parameter name, and its loss terms [box, obj, cls]. */
export interface ShardGradients {
  grads: Record<string, tf.Tensor>;
  loss: [number, number, number];
}

/**
 * Forward, YOLOv5 loss and backward for one shard of a batch, on the trainable parameters in
 * `names` order. The caller owns (and disposes) the returned gradients.
 */
export function shardGradients(model: DetectionModel, names: string[], shard: Shard, hyp: LossHyp): ShardGradients {
  const vars = names.map((n) => model.params.get(n)!);
  const items: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const x = tf.tensor4d(shard.images, [shard.n, shard.height, shard.width, 3]);
    const terms = yoloLoss(model.forward(x, true), shard.targets, shard.nTargets, model, hyp);
    items.push(tf.keep(terms.box), tf.keep(terms.obj), tf.keep(terms.cls));
    return terms.total;
  }, vars);
  const named: Record<string, tf.Tensor> = {};
  names.forEach((n, k) => { named[n] = grads[vars[k].name]; });
  const loss = items.map((t) => t.dataSync()[0]) as [number, number, number];
  tf.dispose([value, ...items]);
  return { grads: named, loss };
}
