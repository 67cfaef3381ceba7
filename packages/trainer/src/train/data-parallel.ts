import type { Worker } from 'node:worker_threads';
import * as tf from '../tf.js';
import type { BackendName } from '../backend/select.js';
import type { Shard } from '../data/types.js';
import { KdEdgeError } from '@kd-edge/core';
import type { LossHyp } from '../loss/yolo-loss.js';
import type { DetectionModel } from '../model/types.js';
import { withBatchNormSync } from '../model/batch-norm-sync.js';
import { microBatches, type ShardGradients } from './step.js';
import { GradientReducer, ReplicaSync } from './shared-sync.js';
import { findWorkerEntry, spawnWorker } from '../util/spawn-worker.js';
import type { GradJob, GradWorkerInit, GradWorkerMessage } from './grad-worker.js';

/**
 * Splits a batch into `parts` shards by image, as evenly as the count allows (the first n mod parts get one
 * more), with target rows renumbered; with fewer images than parts the last shards are empty. Each shard's
 * loss is `(box + obj + cls)·n_shard`, so the shards' gradients sum to the batch's.
 */
export function splitBatch(b: Shard, parts: number): Shard[] {
  if (!Number.isInteger(parts) || parts < 1) throw new RangeError(`splitBatch: parts must be a positive integer, got ${parts}`);
  const px = b.height * b.width * 3;
  const base = Math.floor(b.n / parts), more = b.n % parts;
  const out: Shard[] = [];
  let start = 0;
  for (let p = 0; p < parts; p++) {
    const n = base + (p < more ? 1 : 0);
    const rows: number[] = [];
    for (let k = 0; k < b.nTargets; k++) {
      const img = b.targets[k * 6]!;
      if (img >= start && img < start + n) rows.push(img - start, ...b.targets.subarray(k * 6 + 1, k * 6 + 6));
    }
    // Shards other than the first are posted to a worker: each gets its own buffer (a view would clone the batch).
    const view = b.images.subarray(start * px, (start + n) * px);
    out.push({ images: p === 0 ? view : view.slice(), n, height: b.height, width: b.width, targets: Float32Array.from(rows), nTargets: rows.length / 6 });
    start += n;
  }
  return out;
}

/**
 * Input pixels a replica must get per step before another replica pays: below it SyncBN's 114 lock-step
 * exchanges and the gradient reduction cost more than the shared work saves (yolov5n on 2 cores: 16×128²
 * in 2 replicas ran 7 % slower than 1, 16×256² 38 % faster; docs/results.md).
 */
export const MIN_PIXELS_PER_REPLICA = 250_000;

/**
 * The default replica count (`--threads 0`): one per core, but no more than the step's images, nor more
 * than the step's pixels give {@link MIN_PIXELS_PER_REPLICA} each; at least one.
 * @example defaultReplicas(16, 16, 128) // 1: 16×128² pixels is one replica's work
 */
export function defaultReplicas(cores: number, batch: number, imgsz: number): number {
  const byWork = Math.floor((batch * imgsz * imgsz) / MIN_PIXELS_PER_REPLICA);
  return Math.max(1, Math.min(cores, batch, byWork));
}

/** Whether N shards can run with synchronised BatchNorm: every replica must make the same passes. */
export function canSyncBatchNorm(shards: readonly Shard[]): boolean {
  const passes = shards.map((s) => (s.n === 0 ? 0 : microBatches(s)));
  return passes.every((p) => p > 0 && p === passes[0]);
}

/** What one data-parallel step returns: the summed gradients (the caller disposes them) and each shard's loss items. */
export interface PoolStep {
  grads: Record<string, tf.Tensor>;
  losses: number[][];
}

/**
 * N − 1 model replicas in worker threads (each its own WebAssembly instance, so its own core) beside the
 * main thread's model: each step every replica differentiates one shard of the batch, BatchNorm statistics
 * are synchronised across all of them (SyncBN, an all-gather of small vectors per layer), and the gradients
 * are summed in shared memory by a reduce-scatter whose cost per replica does not grow with N. A replica
 * that fails stops the step with its error; the others are woken, not left waiting.
 */
export class ReplicaPool {
  private readonly weights: Float32Array;
  private version = 0;
  private published = -1;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (loss: number[]) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  private constructor(
    private readonly workers: Worker[],
    /** Every parameter, in the order of the shared weights. */
    private readonly names: string[],
    /** The parameters that get gradients (all but frozen ones), in the order of the gradient regions. */
    readonly gradNames: string[],
    private readonly shapes: Map<string, number[]>,
    weights: SharedArrayBuffer,
    /** The main thread's side (rank 0) of the barrier and the SyncBN gather. */
    readonly sync: ReplicaSync,
    private readonly reducer: GradientReducer,
  ) {
    this.weights = new Float32Array(weights);
    workers.forEach((w, i) => {
      w.on('message', (m: GradWorkerMessage) => {
        if (m.type === 'done') { this.pending.get(m.id)?.resolve(m.loss); this.pending.delete(m.id); }
        if (m.type === 'error') this.fail(new KdEdgeError(m.aborted ? 'TRAIN_REPLICA_ABORTED' : 'TRAIN_WORKER_FAILED', `replica ${i + 1}: ${m.message}`));
      });
      w.on('error', (e) => this.fail(new KdEdgeError('TRAIN_WORKER_FAILED', `replica ${i + 1}: ${e.message}`)));
      w.on('exit', (code) => this.fail(new KdEdgeError('TRAIN_WORKER_FAILED', `replica ${i + 1} exited with code ${code}`)));
    });
  }

  /** Replicas in all, the main thread's included. */
  get ranks(): number {
    return this.workers.length + 1;
  }

  /**
   * Starts `replicas − 1` workers and waits until their backends and models are ready. Variables the model
   * has beyond its description (a plug-in's, see TrainHooks.onTrainStart) are made in the replicas too; with
   * `extraLossModule` (an ExtraLossModule's URL) they can add a plug-in's loss to their passes.
   */
  static async start(
    model: DetectionModel, backend: BackendName, hyp: LossHyp, replicas: number, gradNames: string[], extraLossModule?: string,
  ): Promise<ReplicaPool> {
    if (!Number.isInteger(replicas) || replicas < 2) throw new RangeError(`ReplicaPool: replicas must be an integer ≥ 2, got ${replicas}`);
    const entry = findWorkerEntry(import.meta.url, ['./grad-worker', './train/grad-worker', '../train/grad-worker']);
    if (!entry) throw new KdEdgeError('TRAIN_WORKER_FAILED', 'gradient worker entry (grad-worker.js) not found beside the trainer');
    const names = [...model.params.keys()];
    const shapes = new Map(names.map((n) => [n, model.params.get(n)!.shape]));
    const total = names.reduce((s, n) => s + model.params.get(n)!.size, 0);
    const gradSize = gradNames.reduce((s, n) => s + model.params.get(n)!.size, 0);
    let maxChannels = 1;
    for (const [n, v] of model.params) if (n.endsWith('.bn.weight')) maxChannels = Math.max(maxChannels, v.size);
    const capacity = 1 + 2 * maxChannels;
    const weights = new SharedArrayBuffer(total * 4);
    const control = new SharedArrayBuffer(ReplicaSync.bytes(replicas, capacity));
    const grads = new SharedArrayBuffer(GradientReducer.bytes(replicas, gradSize));
    const workers: Worker[] = [];
    try {
      await Promise.all(Array.from({ length: replicas - 1 }, async (_, i) => {
        const init: GradWorkerInit = {
          backend, description: model.description, hyp, names, shapes: names.map((n) => shapes.get(n)!), gradNames, weights, grads, gradSize,
          control, capacity, rank: i + 1, ranks: replicas, ...(extraLossModule ? { extraLossModule } : {}),
        };
        const worker = spawnWorker(entry, init);
        workers.push(worker);
        await new Promise<void>((resolve, reject) => {
          const onMessage = (m: GradWorkerMessage) => {
            if (m.type === 'ready') { worker.off('message', onMessage); resolve(); }
            if (m.type === 'error') reject(new KdEdgeError('TRAIN_WORKER_FAILED', `replica ${i + 1} did not start: ${m.message}`));
          };
          worker.on('message', onMessage);
          worker.once('error', reject);
        });
      }));
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    }
    const sync = new ReplicaSync(control, 0, replicas, capacity);
    return new ReplicaPool(workers, names, gradNames, shapes, weights, sync, new GradientReducer(grads, sync, gradSize));
  }

  /** Marks the weights as changed (after an optimizer step); they are copied before the next step. */
  invalidate(): void {
    this.version++;
  }

  /**
   * One data-parallel step: shard r goes to replica r (shard 0 to `own`, which runs on this thread inside the
   * SyncBN gather when `syncBn`); resolves with the summed gradients of `gradNames` and each shard's loss items.
   */
  async step(model: DetectionModel, shards: Shard[], syncBn: boolean, jobs: (unknown | undefined)[], own: () => ShardGradients): Promise<PoolStep> {
    if (shards.length !== this.ranks) throw new RangeError(`ReplicaPool.step: ${shards.length} shards for ${this.ranks} replicas`);
    if (this.failure) throw this.failure;
    this.publish(model);
    const pending = shards.slice(1).map((shard, i) => this.post(i, shard, syncBn, jobs[i + 1]));
    pending.forEach((p) => p.catch(() => undefined));
    let mine: number[] = [];
    let others: number[][];
    try {
      if (shards[0]!.n > 0) {
        const r = withBatchNormSync(syncBn ? this.sync : null, own);
        this.reducer.write(this.gradNames, this.shapes, r.grads);
        tf.dispose(Object.values(r.grads));
        mine = r.loss;
      } else {
        this.reducer.own.fill(0);
      }
      this.reducer.reduce();
      others = await Promise.all(pending);
    } catch (err) {
      // This thread failed, or was woken because a replica did: stop them all and report the first cause, not
      // the "another replica failed" of the ones that were woken (its message may come a moment later).
      this.sync.abort();
      const deadline = Date.now() + 5000;
      while (!this.failure && Date.now() < deadline && isAbortEcho(err)) await new Promise((r) => setTimeout(r, 20));
      throw this.failure ?? err;
    }
    const sum = this.reducer.sum;
    const grads: Record<string, tf.Tensor> = {};
    let off = 0;
    for (const n of this.gradNames) {
      const shape = this.shapes.get(n)!;
      const size = tf.util.sizeFromShape(shape);
      grads[n] = tf.tensor(sum.slice(off, off + size), shape);
      off += size;
    }
    return { grads, losses: [mine, ...others] };
  }

  private publish(model: DetectionModel): void {
    if (this.published === this.version) return;
    let off = 0;
    for (const n of this.names) {
      const v = model.params.get(n)!;
      this.weights.set(v.dataSync() as Float32Array, off);
      off += v.size;
    }
    this.published = this.version;
  }

  private post(worker: number, shard: Shard, syncBn: boolean, extra: unknown): Promise<number[]> {
    const id = this.nextId++;
    const job: GradJob = { type: 'step', id, version: this.version, syncBn, ...shard, ...(extra !== undefined ? { extra } : {}) };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // The shard's buffers were sliced for this worker alone: move them instead of copying them again.
      const transfer = [shard.images.buffer, shard.targets.buffer].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
      this.workers[worker]!.postMessage(job, transfer);
    });
  }

  async close(): Promise<void> {
    for (const w of this.workers) w.removeAllListeners('exit');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private fail(e: Error): void {
    if (!isAbortEcho(e)) this.failure ??= e;
    this.sync.abort();
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}


/** An error that only says another replica failed (the one woken by an abort), not why. */
function isAbortEcho(e: unknown): boolean {
  return e instanceof KdEdgeError && e.code === 'TRAIN_REPLICA_ABORTED';
}
