import { KdEdgeError } from '@kd-edge/core';

/**
 * Two-party exchange of small float vectors through shared memory, used to synchronise BatchNorm
 * statistics between the two data-parallel replicas (SyncBN). Each call writes this side's vector,
 * waits until the peer has written its own for the same call number, and returns the peer's.
 * Calls alternate between two slots, so a side can run one call ahead without overwriting a vector
 * the peer has yet to read.
 */
export class PeerExchange {
  private readonly flags: Int32Array;
  private readonly data: Float32Array;
  private calls = 0;

  /** Bytes of shared memory needed for vectors of up to `capacity` floats. */
  static bytes(capacity: number): number {
    return 8 + 4 * 4 * capacity;
  }

  constructor(
    sab: SharedArrayBuffer,
    private readonly rank: 0 | 1,
    private readonly capacity: number,
    private readonly timeoutMs = 120_000,
  ) {
    this.flags = new Int32Array(sab, 0, 2);
    this.data = new Float32Array(sab, 8, 4 * capacity);
  }

  exchange(vec: Float32Array): Float32Array {
    if (vec.length > this.capacity) throw new RangeError(`vector of ${vec.length} floats exceeds the exchange capacity ${this.capacity}`);
    const k = this.calls++;
    const other = 1 - this.rank;
    const mine = ((k & 1) * 2 + this.rank) * this.capacity;
    const theirs = ((k & 1) * 2 + other) * this.capacity;
    this.data.set(vec, mine);
    Atomics.store(this.flags, this.rank, k + 1);
    Atomics.notify(this.flags, this.rank);
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const seen = Atomics.load(this.flags, other);
      if (seen >= k + 1) break;
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(this.flags, other, seen, left) === 'timed-out') {
        throw new KdEdgeError('TRAIN_SYNC_TIMEOUT', `BatchNorm sync: the other replica did not reach exchange ${k + 1} within ${this.timeoutMs} ms`);
      }
    }
    return this.data.slice(theirs, theirs + vec.length);
  }
}

/** What a synchronised BatchNorm needs: the exchange with the other replica. */
export interface BatchNormSync {
  exchange(vec: Float32Array): Float32Array;
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
