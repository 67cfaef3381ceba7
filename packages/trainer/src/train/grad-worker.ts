/**
 * Worker-thread entry of data-parallel training: a replica of the model that computes the loss gradients
 * of its shard of each batch into its region of shared memory, then sums its slice of every replica's
 * gradients (see ReplicaPool). Weights come from the main thread through shared memory as well, re-read
 * whenever their version changes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { KdEdgeError } from '@kd-edge/core';
import * as tf from '../tf.js';
import { selectBackend, type BackendName } from '../backend/select.js';
import type { LossHyp } from '../loss/yolo-loss.js';
import { createYoloModel } from '../model/yolo.js';
import type { Shard } from '../data/types.js';
import type { YoloDescription } from '../model/types.js';
import { withBatchNormSync } from '../model/batch-norm-sync.js';
import type { ExtraLossModule } from './hooks.js';
import { GradientReducer, ReplicaSync } from './shared-sync.js';
import { MICRO_BATCH_PIXELS, shardGradients } from './step.js';

/** Data given to the worker at start. */
export interface GradWorkerInit {
  backend: BackendName;
  description: YoloDescription;
  /** Loss hyperparameters, already scaled. */
  hyp: LossHyp;
  /** Every parameter name in the order of the shared weights, and their shapes. */
  names: string[];
  shapes: number[][];
  /** The parameters that get gradients, in the order of the gradient regions. */
  gradNames: string[];
  weights: SharedArrayBuffer;
  /** Gradient regions and their sum (GradientReducer), each `gradSize` floats. */
  grads: SharedArrayBuffer;
  gradSize: number;
  /** Barrier, SyncBN gather and abort flag (ReplicaSync), and the gather's capacity in floats. */
  control: SharedArrayBuffer;
  capacity: number;
  rank: number;
  ranks: number;
  /** URL of the ExtraLossModule that builds the loss of jobs with `extra` (a plug-in's, e.g. distillation). */
  extraLossModule?: string;
}

/** A shard of a batch to differentiate. */
export interface GradJob extends Shard {
  type: 'step';
  id: number;
  /** Weights version to use; the worker re-reads the shared weights when it changes. */
  version: number;
  /** Whether BatchNorm statistics are synchronised across the replicas for this job. */
  syncBn: boolean;
  /** A job for the extra-loss module (distillation: the loss spec and the teacher's outputs for this shard). */
  extra?: unknown;
}

/** Messages from the worker. */
export type GradWorkerMessage =
  | { type: 'ready'; backend: string }
  | { type: 'done'; id: number; loss: number[] }
  | { type: 'error'; id: number; message: string; aborted?: boolean };

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
    const shapes = new Map(init.names.map((n, i) => [n, init.shapes[i]!]));
    const weights = new Float32Array(init.weights);
    const sync = new ReplicaSync(init.control, init.rank, init.ranks, init.capacity);
    const reducer = new GradientReducer(init.grads, sync, init.gradSize);
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
        let loss: number[] = [];
        if (job.n > 0) {
          if (job.extra !== undefined && !extraLoss) throw new Error('a job with an extra loss, but no extra-loss module was given at start');
          const extra = job.extra !== undefined ? extraLoss!(job.extra, model) : undefined;
          const r = withBatchNormSync(job.syncBn ? sync : null, () =>
            shardGradients(model, init.gradNames, job, init.hyp, MICRO_BATCH_PIXELS, extra));
          extra?.dispose();
          reducer.write(init.gradNames, shapes, r.grads);
          tf.dispose(Object.values(r.grads));
          loss = r.loss;
        } else {
          reducer.own.fill(0);
        }
        reducer.reduce();
        post({ type: 'done', id: job.id, loss });
      } catch (err) {
        sync.abort();
        const aborted = err instanceof KdEdgeError && err.code === 'TRAIN_REPLICA_ABORTED';
        post({ type: 'error', id: job.id, message: err instanceof Error ? err.message : String(err), ...(aborted ? { aborted } : {}) });
      }
    });
    post({ type: 'ready', backend: backend.name });
  };
  start().catch((err: unknown) => post({ type: 'error', id: -1, message: err instanceof Error ? err.message : String(err) }));
}
