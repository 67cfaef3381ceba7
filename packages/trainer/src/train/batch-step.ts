import * as tf from '../tf.js';
import type { Batch } from '../data/types.js';
import { canSyncBatchNorm, splitBatch } from './data-parallel.js';
import type { BatchPosition } from './hooks.js';
import type { RunState } from './setup.js';
import { clipGradNorm } from './sgd.js';
import { MICRO_BATCH_PIXELS, shardGradients, sumGradients } from './step.js';

/** What one training step reports: its loss items and whether the optimizer stepped. */
export interface BatchStepResult {
  loss: number[];
  optimizerStep: boolean;
}

/**
 * One training step at global step `ni`: the batch's gradients with the plug-in's extra loss (one shard per
 * replica when there is a replica pool), accumulated until `accumulate` steps have passed, then clipped and
 * applied, and the EMA updated.
 */
export async function stepBatch(s: RunState, batch: Batch, at: BatchPosition, ni: number): Promise<BatchStepResult> {
  const { model, varNames, replicas, hooks, loop } = s;
  const extra = await hooks.extraLoss?.forBatch(batch, at, s.lossHyp);
  const pad = (l: number[]): number[] => (l.length === 3 ? [...l, ...hooks.itemNames.map(() => 0)] : l);
  let named: Record<string, tf.Tensor>;
  let loss: number[];
  if (replicas) {
    const shards = splitBatch(batch, replicas.ranks);
    // SyncBN needs every replica to make the same passes; an uneven last batch runs unsynchronised.
    const syncBn = canSyncBatchNorm(shards);
    let start = 0;
    const jobs = shards.map((sh) => { const j = sh.n > 0 ? extra?.job(start, sh.n) : undefined; start += sh.n; return j; });
    const r = await replicas.step(model, shards, syncBn, jobs, () => {
      const local = extra?.build(0, shards[0]!.n, model);
      try {
        return shardGradients(model, varNames, shards[0]!, s.lossHyp, MICRO_BATCH_PIXELS, local);
      } finally {
        local?.dispose();
      }
    });
    named = r.grads;
    // Steps without the extra loss (distillation's warm-up) report zeros for its items.
    const width = Math.max(...r.losses.map((l) => pad(l).length));
    loss = new Array<number>(width).fill(0);
    r.losses.forEach((l, i) => pad(l).forEach((v, j) => { loss[j]! += (v * shards[i]!.n) / batch.n; }));
  } else {
    const local = extra?.build(0, batch.n, model);
    const step = shardGradients(model, varNames, batch, s.lossHyp, MICRO_BATCH_PIXELS, local);
    local?.dispose();
    named = step.grads;
    loss = pad(step.loss);
  }
  // Gradients accumulate across steps (and epochs, as in ultralytics) until the optimizer steps.
  loop.acc = loop.acc ? sumGradients(varNames, loop.acc, named) : named;
  const optimizerStep = ni - loop.lastOptStep >= loop.accumulate;
  if (optimizerStep) {
    const clipped = clipGradNorm(loop.acc, 10.0).grads;
    s.optimizer.step(clipped);
    tf.dispose(Object.values(clipped));
    loop.acc = undefined;
    s.ema.update(model);
    replicas?.invalidate();
    loop.lastOptStep = ni;
  }
  return { loss, optimizerStep };
}
