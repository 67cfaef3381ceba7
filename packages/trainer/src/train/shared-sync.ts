import { KdEdgeError } from '@kd-edge/core';
import * as tf from '../tf.js';

// Layout of the control block: [0] aborted flag, [1] barrier count, [2] barrier generation, [3..3+ranks) gather calls.
const ABORT = 0;
const COUNT = 1;
const GENERATION = 2;
const CALLS = 3;

/**
 * What N replicas in worker threads share to stay in lock-step: a barrier, an all-gather of small float
 * vectors (SyncBN's moments), and an abort flag that wakes every waiter when one replica fails, so a
 * replica's error stops the run instead of leaving the others waiting. All waits have a deadline.
 */
export class ReplicaSync {
  private readonly ctl: Int32Array;
  private readonly data: Float32Array;
  private calls = 0;

  /** Bytes of shared memory for `ranks` replicas gathering vectors of up to `capacity` floats. */
  static bytes(ranks: number, capacity: number): number {
    return 4 * (CALLS + ranks) + 4 * 2 * ranks * capacity;
  }

  constructor(
    sab: SharedArrayBuffer,
    readonly rank: number,
    readonly ranks: number,
    private readonly capacity: number,
    private readonly timeoutMs = 120_000,
  ) {
    if (!Number.isInteger(ranks) || ranks < 1 || !Number.isInteger(rank) || rank < 0 || rank >= ranks) {
      throw new RangeError(`ReplicaSync: rank ${rank} of ${ranks} is not valid`);
    }
    this.ctl = new Int32Array(sab, 0, CALLS + ranks);
    this.data = new Float32Array(sab, 4 * (CALLS + ranks), 2 * ranks * capacity);
  }

  /** Marks the run failed and wakes every replica waiting at a barrier or a gather. */
  abort(): void {
    Atomics.store(this.ctl, ABORT, 1);
    Atomics.add(this.ctl, GENERATION, 1);
    Atomics.notify(this.ctl, GENERATION);
    for (let r = 0; r < this.ranks; r++) {
      Atomics.add(this.ctl, CALLS + r, 1 << 30);
      Atomics.notify(this.ctl, CALLS + r);
    }
  }

  get aborted(): boolean {
    return Atomics.load(this.ctl, ABORT) === 1;
  }

  private check(what: string): void {
    if (this.aborted) throw new KdEdgeError('TRAIN_REPLICA_ABORTED', `${what}: another replica failed`);
  }

  private waitWhile(index: number, value: number, deadline: number, what: string): void {
    const left = deadline - Date.now();
    if (left <= 0 || Atomics.wait(this.ctl, index, value, left) === 'timed-out') {
      this.check(what);
      throw new KdEdgeError('TRAIN_SYNC_TIMEOUT', `${what}: the other replicas did not arrive within ${this.timeoutMs} ms`);
    }
    this.check(what);
  }

  /** Waits until every replica has arrived (a generation-counting barrier). */
  barrier(): void {
    this.check('barrier');
    const gen = Atomics.load(this.ctl, GENERATION);
    if (Atomics.add(this.ctl, COUNT, 1) === this.ranks - 1) {
      Atomics.store(this.ctl, COUNT, 0);
      Atomics.add(this.ctl, GENERATION, 1);
      Atomics.notify(this.ctl, GENERATION);
      return;
    }
    const deadline = Date.now() + this.timeoutMs;
    while (Atomics.load(this.ctl, GENERATION) === gen) this.waitWhile(GENERATION, gen, deadline, 'barrier');
  }

  /**
   * Every replica's vector for this call, in rank order (this one's included). Calls alternate between two
   * slots, so a replica may run one call ahead without overwriting a vector another has yet to read.
   */
  gather(vec: Float32Array): Float32Array[] {
    if (vec.length > this.capacity) throw new RangeError(`vector of ${vec.length} floats exceeds the exchange capacity ${this.capacity}`);
    this.check('BatchNorm sync');
    const k = this.calls++;
    const slot = (r: number): number => ((k & 1) * this.ranks + r) * this.capacity;
    this.data.set(vec, slot(this.rank));
    Atomics.store(this.ctl, CALLS + this.rank, k + 1);
    Atomics.notify(this.ctl, CALLS + this.rank);
    const deadline = Date.now() + this.timeoutMs;
    const out: Float32Array[] = [];
    for (let r = 0; r < this.ranks; r++) {
      if (r !== this.rank) {
        for (;;) {
          const seen = Atomics.load(this.ctl, CALLS + r);
          if (seen >= k + 1) break;
          this.waitWhile(CALLS + r, seen, deadline, 'BatchNorm sync');
        }
      }
      out.push(this.data.slice(slot(r), slot(r) + vec.length));
    }
    this.check('BatchNorm sync');
    return out;
  }
}

/**
 * Sums N replicas' gradients in shared memory with a cost per replica that does not grow with N: each writes
 * its gradients into its own region, all meet at a barrier, then replica r adds up slice r of every region
 * into the result (a reduce-scatter; the result is shared memory, so the gather is free).
 */
export class GradientReducer {
  private readonly regions: Float32Array[];
  private readonly result: Float32Array;

  /** Bytes of shared memory for `ranks` regions of `size` floats and the result. */
  static bytes(ranks: number, size: number): number {
    return 4 * (ranks + 1) * size;
  }

  constructor(sab: SharedArrayBuffer, private readonly sync: ReplicaSync, readonly size: number) {
    this.regions = Array.from({ length: sync.ranks }, (_, r) => new Float32Array(sab, 4 * r * size, size));
    this.result = new Float32Array(sab, 4 * sync.ranks * size, size);
  }

  /** This replica's region, to write its gradients into (flat, in the agreed parameter order). */
  get own(): Float32Array {
    return this.regions[this.sync.rank]!;
  }

  /** Writes gradients into {@link own}, flat in `names` order (zeros for a parameter without one). */
  write(names: readonly string[], shapes: ReadonlyMap<string, readonly number[]>, grads: Record<string, tf.Tensor>): void {
    const flat = this.own;
    let off = 0;
    for (const n of names) {
      const size = tf.util.sizeFromShape([...shapes.get(n)!]);
      const g = grads[n];
      if (g) flat.set(g.dataSync() as Float32Array, off);
      else flat.fill(0, off, off + size);
      off += size;
    }
  }

  /** The sum, valid once every replica has returned from {@link reduce}. */
  get sum(): Float32Array {
    return this.result;
  }

  /** After writing {@link own}: waits for the others, then sums this replica's slice of every region in rank order. */
  reduce(): void {
    this.sync.barrier();
    const { rank, ranks } = this.sync;
    const per = Math.ceil(this.size / ranks);
    const lo = Math.min(this.size, rank * per), hi = Math.min(this.size, lo + per);
    const out = this.result;
    out.set(this.regions[0]!.subarray(lo, hi), lo);
    for (let r = 1; r < ranks; r++) {
      const src = this.regions[r]!;
      for (let i = lo; i < hi; i++) out[i]! += src[i]!;
    }
  }
}
