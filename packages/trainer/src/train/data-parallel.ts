import type { Worker } from 'node:worker_threads';
import * as tf from '../tf.js';
import type { BackendName } from '../backend/select.js';
import type { Batch, Shard } from '../data/types.js';
import { KdEdgeError } from '@kd-edge/core';
import type { LossHyp } from '../loss/yolo-loss.js';
import type { DetectionModel } from '../model/types.js';
import { PeerExchange } from '../model/batch-norm-sync.js';
import { splitShard } from './step.js';
import { findWorkerEntry, spawnWorker } from '../util/spawn-worker.js';
import type { GradJob, GradWorkerInit, GradWorkerMessage } from './grad-worker.js';

/**
 * Splits a batch into two shards by image: the first ceil(n/2) images and the rest, with target rows
 * renumbered. Each shard's loss is `(box + obj + cls)·n_shard`, so the sum of the shards' gradients is
 * the gradient ultralytics' DDP produces (per-replica BatchNorm statistics, as without SyncBN).
 */
export function splitBatch(b: Batch): [Shard, Shard] {
  const [mine, theirs] = splitShard(b, Math.ceil(b.n / 2));
  // The worker's half is posted: give it its own buffer (a view would clone the whole batch).
  return [mine, { ...theirs, images: theirs.images.slice() }];
}

/**
 * A second model replica in a worker thread (its own WebAssembly instance, so its own core) that
 * computes the gradients of half of each batch while the main thread computes the other half.
 */
export class GradientWorker {
  private readonly weights: Float32Array;
  private readonly grads: Float32Array;
  private version = 0;
  private published = -1;
  private nextId = 0;
  private pending = new Map<number, { resolve: (loss: number[]) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly names: string[],
    private readonly sizes: number[],
    private readonly shapes: number[][],
    weights: SharedArrayBuffer,
    grads: SharedArrayBuffer,
    /** The main thread's side of the SyncBN exchange (run its own pass inside withBatchNormSync). */
    readonly exchange: PeerExchange,
  ) {
    this.weights = new Float32Array(weights);
    this.grads = new Float32Array(grads);
    worker.on('message', (m: GradWorkerMessage) => {
      if (m.type === 'done') { this.pending.get(m.id)?.resolve(m.loss); this.pending.delete(m.id); }
      if (m.type === 'error') this.fail(new KdEdgeError('TRAIN_WORKER_FAILED', `gradient worker: ${m.message}`));
    });
    worker.on('error', (e) => this.fail(new KdEdgeError('TRAIN_WORKER_FAILED', `gradient worker: ${e.message}`)));
    worker.on('exit', (code) => this.fail(new KdEdgeError('TRAIN_WORKER_FAILED', `gradient worker exited with code ${code}`)));
  }

  /**
   * Starts the replica and waits until its backend and model are ready. Variables the model has beyond
   * its description (a plug-in's, see TrainHooks.onTrainStart) are made in the replica too; with
   * `extraLossModule` (an ExtraLossModule's URL) it can add a plug-in's loss to its passes.
   */
  static async start(model: DetectionModel, backend: BackendName, hyp: LossHyp, extraLossModule?: string): Promise<GradientWorker> {
    const entry = findWorkerEntry(import.meta.url, ['./grad-worker', './train/grad-worker', '../train/grad-worker']);
    if (!entry) throw new KdEdgeError('TRAIN_WORKER_FAILED', 'gradient worker entry (grad-worker.js) not found beside the trainer');
    const names = [...model.params.keys()];
    const vars = names.map((n) => model.params.get(n)!);
    const total = vars.reduce((s, v) => s + v.size, 0);
    const weights = new SharedArrayBuffer(total * 4);
    const grads = new SharedArrayBuffer(total * 4);
    let maxChannels = 1;
    for (const [n, v] of model.params) if (n.endsWith('.bn.weight')) maxChannels = Math.max(maxChannels, v.size);
    const bnCapacity = 1 + 2 * maxChannels;
    const bnSync = new SharedArrayBuffer(PeerExchange.bytes(bnCapacity));
    const init: GradWorkerInit = {
      backend, description: model.description, hyp, names, shapes: vars.map((v) => v.shape), weights, grads, bnSync, bnCapacity,
      ...(extraLossModule ? { extraLossModule } : {}),
    };
    const worker = spawnWorker(entry, init);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: GradWorkerMessage) => {
        if (m.type === 'ready') { worker.off('message', onMessage); resolve(); }
        if (m.type === 'error') reject(new KdEdgeError('TRAIN_WORKER_FAILED', `gradient worker did not start: ${m.message}`));
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
    const exchange = new PeerExchange(bnSync, 0, bnCapacity);
    return new GradientWorker(worker, names, vars.map((v) => v.size), vars.map((v) => v.shape), weights, grads, exchange);
  }

  /** Marks the weights as changed (after an optimizer step); they are copied before the next job. */
  invalidate(): void {
    this.version++;
  }

  /**
   * Starts differentiating a shard with the model's current weights; resolves with its loss terms.
   * With `syncBn`, the caller must run its own pass of the same step inside
   * `withBatchNormSync(worker.exchange, …)`, with as many micro-batches, or both sides wait.
   * `extra` is a job for the extra-loss module the worker was started with (BatchExtraLoss.job).
   */
  compute(model: DetectionModel, shard: Shard, syncBn = false, extra?: unknown): Promise<number[]> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.published !== this.version) {
      let off = 0;
      for (const n of this.names) {
        const v = model.params.get(n)!;
        this.weights.set(v.dataSync() as Float32Array, off);
        off += v.size;
      }
      this.published = this.version;
    }
    const id = this.nextId++;
    const job: GradJob = { type: 'step', id, version: this.version, syncBn, ...shard, ...(extra !== undefined ? { extra } : {}) };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(job);
    });
  }

  /** The last job's gradients as tensors, by parameter name (the caller disposes them). */
  gradients(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    let off = 0;
    this.names.forEach((n, i) => {
      out[n] = tf.tensor(this.grads.slice(off, off + this.sizes[i]), this.shapes[i]);
      off += this.sizes[i];
    });
    return out;
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
