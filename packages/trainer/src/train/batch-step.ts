import * as tf from '../tf.js';
import type { Batch } from '../data/types.js';
import { withBatchNormSync } from '../model/batch-norm-sync.js';
import { splitBatch } from './data-parallel.js';
import type { BatchPosition } from './hooks.js';
import type { RunState } from './setup.js';
import { clipGradNorm } from './sgd.js';
import { MICRO_BATCH_PIXELS, microBatches, shardGradients, sumGradients } from './step.js';

/** What one training step reports: its loss items and whether the optimizer stepped. */
export interface BatchStepResult {
  loss: number[];
  optimizerStep: boolean;
}

/**
 * One training step at global step `ni`: the batch's gradients with the plug-in's extra loss (half of
 * them in the gradient worker when there is one), accumulated until `accumulate` steps have passed,
 * then clipped and applied, and the EMA updated.
 */
export async function stepBatch(s: RunState, batch: Batch, at: BatchPosition, ni: number): Promise<BatchStepResult> {
  const { model, varNames, gradWorker, hooks, loop } = s;
  // Data parallel: the worker differentiates the second half of the batch meanwhile.
  const [mine, theirs] = gradWorker && batch.n > 1 ? splitBatch(batch) : [batch, undefined];
  // SyncBN needs both replicas to make the same passes; an uneven last batch runs unsynchronised.
  const syncBn = theirs !== undefined && microBatches(mine) === microBatches(theirs);
  const extra = await hooks.extraLoss?.forBatch(batch, at, s.lossHyp);
  const pending = theirs ? gradWorker!.compute(model, theirs, syncBn, extra?.job(mine.n, theirs.n)) : undefined;
  const local = extra?.build(0, mine.n, model);
  const step = withBatchNormSync(syncBn ? gradWorker!.exchange : null, () =>
    shardGradients(model, varNames, mine, s.lossHyp, MICRO_BATCH_PIXELS, local));
  local?.dispose();
  let named = step.grads;
  // Steps without the extra loss (distillation's warm-up) report zeros for its items.
  let loss = step.loss.length === 3 ? [...step.loss, ...hooks.itemNames.map(() => 0)] : step.loss;
  if (pending && theirs) {
    const other = await pending;
    named = sumGradients(varNames, step.grads, gradWorker!.gradients());
    loss = loss.map((v, j) => (v * mine.n + (other[j] ?? 0) * theirs.n) / batch.n);
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
    gradWorker?.invalidate();
    loop.lastOptStep = ni;
  }
  return { loss, optimizerStep };
}
