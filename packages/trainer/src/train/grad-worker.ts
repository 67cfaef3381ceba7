/**
 * Worker-thread entry of data-parallel training: a replica of the model that computes the loss
 * gradients of its share of each batch and writes them into shared memory. Weights come from the
 * main thread through shared memory as well, re-read whenever their version changes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '../tf.js';
import { selectBackend, type BackendName } from '../backend/select.js';
import type { LossHyp } from '../loss/yolo-loss.js';
import { createYoloModel } from '../model/yolo.js';
import type { Shard } from '../data/types.js';
import type { YoloDescription } from '../model/types.js';
import { PeerExchange, withBatchNormSync } from '../model/batch-norm-sync.js';
import type { ExtraLossModule } from './hooks.js';
import { MICRO_BATCH_PIXELS, shardGradients } from './step.js';

/** Data given to the worker at start. */
export interface GradWorkerInit {
  backend: BackendName;
  description: YoloDescription;
  /** Loss hyperparameters, already scaled. */
  hyp: LossHyp;
  /** Trainable parameter names in the order of the flat buffers, and their shapes. */
  names: string[];
  shapes: number[][];
  weights: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  /** BatchNorm statistics exchange (SyncBN) and its capacity in floats. */
  bnSync: SharedArrayBuffer;
  bnCapacity: number;
  /** URL of the ExtraLossModule that builds the loss of jobs with `extra` (a plug-in's, e.g. distillation). */
  extraLossModule?: string;
}

/** A shard of a batch to differentiate. */
export interface GradJob extends Shard {
  type: 'step';
  id: number;
  /** Weights version to use; the worker re-reads the shared weights when it changes. */
  version: number;
  /** Whether BatchNorm statistics are synchronised with the main thread for this job. */
  syncBn: boolean;
  /** A job for the extra-loss module (distillation: the loss spec and the teacher's outputs for this shard). */
  extra?: unknown;
}

/** Messages from the worker. */
export type GradWorkerMessage =
  | { type: 'ready'; backend: string }
  | { type: 'done'; id: number; loss: number[] }
  | { type: 'error'; id: number; message: string };

const port = parentPort;
if (port) {
  const init = workerData as GradWorkerInit;
  const post = (m: GradWorkerMessage) => port.postMessage(m);
  const start = async () => {
    const backend = await selectBackend(init.backend);
    const model = createYoloModel(init.description);
    // A plug-in's variables (distillation adapters) are not in the description: make them here, their
    // values come with the weights before the first job.
    init.names.forEach((n, i) => {
      if (model.params.has(n)) return;
      const zeros = tf.zeros(init.shapes[i]!);
      model.params.set(n, tf.variable(zeros));
      zeros.dispose();
    });
    const extraLoss = init.extraLossModule ? ((await import(init.extraLossModule)) as ExtraLossModule).buildExtraLoss : undefined;
    const vars = init.names.map((n) => {
      const v = model.params.get(n);
      if (!v) throw new Error(`replica has no parameter ${n}`);
      return v;
    });
    const weights = new Float32Array(init.weights);
    const grads = new Float32Array(init.grads);
    const exchange = new PeerExchange(init.bnSync, 1, init.bnCapacity);
    let version = -1;
    port.on('message', (job: GradJob) => {
      try {
        if (job.version !== version) {
          let off = 0;
          tf.tidy(() => {
            for (const v of vars) {
              v.assign(tf.tensor(weights.subarray(off, off + v.size), v.shape));
              off += v.size;
            }
          });
          version = job.version;
        }
        if (job.extra !== undefined && !extraLoss) throw new Error('a job with an extra loss, but no extra-loss module was given at start');
        const extra = job.extra !== undefined ? extraLoss!(job.extra, model) : undefined;
        const { grads: g, loss } = withBatchNormSync(job.syncBn ? exchange : null, () =>
          shardGradients(model, init.names, job, init.hyp, MICRO_BATCH_PIXELS, extra));
        extra?.dispose();
        let off = 0;
        for (const n of init.names) {
          grads.set(g[n].dataSync() as Float32Array, off);
          off += g[n].size;
        }
        tf.dispose(Object.values(g));
        post({ type: 'done', id: job.id, loss });
      } catch (err) {
        post({ type: 'error', id: job.id, message: err instanceof Error ? err.message : String(err) });
      }
    });
    post({ type: 'ready', backend: backend.name });
  };
  start().catch((err: unknown) => post({ type: 'error', id: -1, message: err instanceof Error ? err.message : String(err) }));
}
