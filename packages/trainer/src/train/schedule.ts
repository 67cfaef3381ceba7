/** Learning-rate factor per epoch: linear (ultralytics default) or cosine one-cycle (`--cos-lr`). */
export function lrLambda(kind: 'linear' | 'cosine', epochs: number, lrf: number): (epoch: number) => number {
  if (kind === 'cosine') return (x) => ((1 - Math.cos((x * Math.PI) / epochs)) / 2) * (lrf - 1) + 1;
  return (x) => (1 - x / epochs) * (1 - lrf) + lrf;
}

/** numpy.interp for a two-point x/y range. */
export function interp(x: number, xp: [number, number], fp: [number, number]): number {
  if (x <= xp[0]) return fp[0];
  if (x >= xp[1]) return fp[1];
  return fp[0] + ((x - xp[0]) / (xp[1] - xp[0])) * (fp[1] - fp[0]);
}

/** Settings of the warm-up (ultralytics train.py). */
export interface WarmupConfig {
  /** Warm-up iterations: max(round(warmup_epochs · batches per epoch), 100); none when warmup_epochs is 0. */
  iterations: number;
  warmupBiasLr: number;
  warmupMomentum: number;
  momentum: number;
  /** Nominal batch size (64) over the real one. */
  accumulateTarget: number;
}

/**
 * Per-iteration learning rates, momentum and accumulation during warm-up: group 0 (biases) falls
 * from warmup_bias_lr, the others rise from 0, all toward lr0·lf(epoch); momentum rises from
 * warmup_momentum.
 */
export function warmupStep(ni: number, epochLr: number, w: WarmupConfig): { lrs: [number, number, number]; momentum: number; accumulate: number } {
  const xi: [number, number] = [0, w.iterations];
  return {
    lrs: [interp(ni, xi, [w.warmupBiasLr, epochLr]), interp(ni, xi, [0, epochLr]), interp(ni, xi, [0, epochLr])],
    momentum: interp(ni, xi, [w.warmupMomentum, w.momentum]),
    accumulate: Math.max(1, roundHalfEven(interp(ni, xi, [1, w.accumulateTarget]))),
  };
}

/** numpy's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
