import type * as tf from '../tf.js';
import type { Batch } from '../data/types.js';
import type { BatchPosition, EpochEnd, ExtraLossHook, TrainHooks, TrainStart } from './hooks.js';
import type { StepInfo, TrainResult } from './types.js';

/** The loop's side of {@link TrainHooks}: calls every plug-in at each point, in the order given. */
export class HookList {
  /** The one plug-in loss of the run, if any. */
  readonly extraLoss: ExtraLossHook | undefined;
  /** Loss items after box, obj and cls. */
  readonly itemNames: readonly string[];

  constructor(private readonly hooks: readonly TrainHooks[]) {
    const losses = hooks.flatMap((h) => (h.extraLoss ? [h.extraLoss] : []));
    // Each extra loss decides the pass's total ((1−α)·hard + …), so two cannot be combined.
    if (losses.length > 1) throw new RangeError(`hooks: at most one may have an extraLoss, got ${losses.length}`);
    this.extraLoss = losses[0];
    this.itemNames = this.extraLoss?.itemNames ?? [];
  }

  /** Every plug-in's trained-but-not-exported variables, by name. */
  async trainStart(start: TrainStart): Promise<Map<string, tf.Variable>> {
    const all = new Map<string, tf.Variable>();
    for (const h of this.hooks) {
      for (const [name, v] of (await h.onTrainStart?.(start)) ?? []) {
        if (all.has(name) || start.model.params.has(name)) throw new RangeError(`hooks: variable ${name} is defined twice`);
        all.set(name, v);
      }
    }
    return all;
  }

  epochStart(epoch: number): void {
    for (const h of this.hooks) h.onEpochStart?.(epoch);
  }

  batchStart(batch: Batch, at: BatchPosition): void {
    for (const h of this.hooks) h.onBatchStart?.(batch, at);
  }

  batchEnd(step: StepInfo, ms: number): void {
    for (const h of this.hooks) h.onBatchEnd?.(step, ms);
  }

  progress(meanLoss: readonly number[]): Record<string, number> {
    return Object.assign({}, ...this.hooks.map((h) => h.progress?.(meanLoss) ?? {})) as Record<string, number>;
  }

  /** Every plug-in's epoch logs, merged. */
  async epochEnd(end: EpochEnd): Promise<{ scalars: Record<string, number>; histograms: Record<string, Float32Array> }> {
    const out = { scalars: {}, histograms: {} };
    for (const h of this.hooks) {
      const logs = await h.onEpochEnd?.(end);
      Object.assign(out.scalars, logs?.scalars);
      Object.assign(out.histograms, logs?.histograms);
    }
    return out;
  }

  /** Every plug-in's checkpoint state, merged (saved in the checkpoint's meta as `hookState`). */
  checkpointState(): Record<string, unknown> {
    return Object.assign({}, ...this.hooks.map((h) => h.checkpointState?.() ?? {})) as Record<string, unknown>;
  }

  async fitEnd(result: TrainResult): Promise<void> {
    for (const h of this.hooks) await h.onFitEnd?.(result);
  }
}
