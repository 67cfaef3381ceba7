/** What a synchronised BatchNorm needs: every replica's vector for the same call, in rank order (train/shared-sync.ts). */
export interface BatchNormSync {
  gather(vec: Float32Array): Float32Array[];
}

let active: BatchNormSync | null = null;

/** Runs `fn` with training-mode BatchNorm statistics synchronised through `sync` (or local when null). */
export function withBatchNormSync<T>(sync: BatchNormSync | null, fn: () => T): T {
  const before = active;
  active = sync;
  try {
    return fn();
  } finally {
    active = before;
  }
}

/** The synchronisation in effect for training-mode BatchNorm on this thread, if any. */
export function batchNormSync(): BatchNormSync | null {
  return active;
}

/**
 * Combines per-replica moments (Chan et al. 1979): counts n₁, n₂, means and biased variances per
 * channel → the mean and biased variance of the union.
 */
export function combineMoments(
  n1: number, mean1: Float32Array, var1: Float32Array,
  n2: number, mean2: Float32Array, var2: Float32Array,
): { mean: Float32Array; variance: Float32Array } {
  const n = n1 + n2;
  const mean = new Float32Array(mean1.length);
  const variance = new Float32Array(mean1.length);
  for (let c = 0; c < mean1.length; c++) {
    const d = mean2[c] - mean1[c];
    mean[c] = mean1[c] + (d * n2) / n;
    variance[c] = (var1[c] * n1 + var2[c] * n2 + (d * d * n1 * n2) / n) / n;
  }
  return { mean, variance };
}
