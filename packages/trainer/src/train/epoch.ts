import * as tf from '../tf.js';
import { ProgressBar } from '../log/progress.js';
import { stepBatch } from './batch-step.js';
import type { BatchPosition } from './hooks.js';
import { lookahead } from './lookahead.js';
import { warmupStep } from './schedule.js';
import type { RunState } from './setup.js';

/** What an epoch's steps left for its end: how many ran, mean losses, images, when it started. */
export interface EpochSteps {
  /** Steps that ran; fewer than the batches per epoch when the run was stopped. */
  steps: number;
  /** Mean loss items: box, obj, cls, then the extra loss's. */
  meanLoss: number[];
  images: number;
  /** performance.now() at its start. */
  startedAt: number;
}

/**
 * The steps of one epoch: the epoch's learning rate, warm-up per step, one {@link stepBatch} per batch,
 * the progress bar, and a stop after the current step when interrupted or at `maxSteps`.
 */
export async function trainEpoch(s: RunState, epoch: number): Promise<EpochSteps> {
  const { cfg, hooks, loop, nb } = s;
  const epochLr = s.hyp.lr0 * s.lf(epoch);
  for (const g of s.optimizer.groups) g.lr = epochLr;
  hooks.epochStart(epoch);
  const mloss = new Array<number>(3 + hooks.itemNames.length).fill(0);
  const bar = new ProgressBar({ epoch, epochs: cfg.epochs, steps: nb, stream: s.run.progress });
  const at = (index: number): BatchPosition => ({ epoch, index, progress: epoch + index / nb });
  const startedAt = performance.now();
  let i = 0;
  let seen = 0;
  // Plug-ins see batch k+1 before step k, so work they start on it (a teacher's pass) overlaps the step.
  for await (const batch of lookahead(s.trainLoader.epoch(epoch), (b, k) => hooks.batchStart(b, at(k)))) {
    const tStep = performance.now();
    const ni = i + nb * epoch;
    if (ni <= s.nw) warmup(s, ni, epochLr);
    const { loss, optimizerStep } = await stepBatch(s, batch, at(i), ni);
    if (!loss.every(Number.isFinite)) s.log.warn(`non-finite loss at epoch ${epoch + 1} step ${i + 1}: ${loss.join(', ')}`);
    for (let j = 0; j < mloss.length; j++) mloss[j] = (mloss[j] * i + loss[j]!) / (i + 1);
    seen += batch.n;
    i++;
    loop.steps++;
    hooks.batchEnd({ epoch, step: i, optimizerStep, loss, numTensors: tf.memory().numTensors }, performance.now() - tStep);
    bar.update(i, { box_loss: mloss[0], obj_loss: mloss[1], cls_loss: mloss[2], ...hooks.progress(mloss) }, seen);
    if (loop.interrupted || (s.run.maxSteps !== undefined && loop.steps >= s.run.maxSteps)) {
      loop.interrupted = true;
      break;
    }
  }
  bar.finish();
  return { steps: i, meanLoss: mloss, images: seen, startedAt };
}

/** Warm-up of learning rates, momentum and accumulation over the first `nw` global steps (ultralytics). */
function warmup(s: RunState, ni: number, epochLr: number): void {
  const { hyp } = s;
  const w = warmupStep(ni, epochLr, {
    iterations: s.nw, warmupBiasLr: hyp.warmup_bias_lr, warmupMomentum: hyp.warmup_momentum, momentum: hyp.momentum, accumulateTarget: s.accumulateTarget,
  });
  w.lrs.forEach((lr, j) => { s.optimizer.groups[j].lr = lr; s.optimizer.groups[j].momentum = w.momentum; });
  s.loop.accumulate = w.accumulate;
}
