import * as tf from '../tf.js';
import type { TrainConfig } from '../config.js';
import { endEpoch, endStoppedEpoch } from './epoch-end.js';
import { trainEpoch } from './epoch.js';
import { finishRun } from './finish.js';
import type { Hyp } from './hyp.js';
import { setupRun } from './setup.js';
import type { TrainResult, TrainRunOptions } from './types.js';

/**
 * Trains a YOLOv5-family detector the way ultralytics train.py does: SGD with Nesterov momentum,
 * warm-up of learning rate and momentum, linear or cosine decay, EMA, gradient accumulation to
 * a nominal batch of 64, checkpoints `last` and `best` by fitness, resume. Plug-ins (distillation)
 * come in through `run.hooks`.
 * @example
 * await train(resolveOptions(TRAIN_SCHEMA, [{ data: 'data.yaml', epochs: 10, imgsz: 128 }]).config, HYP_SCRATCH_LOW);
 */
export async function train(cfg: TrainConfig, hyp: Hyp, run: TrainRunOptions = {}): Promise<TrainResult> {
  const s = await setupRun(cfg, hyp, run);
  const onAbort = () => { s.loop.interrupted = true; };
  run.signal?.addEventListener('abort', onAbort);
  if (run.signal?.aborted) s.loop.interrupted = true;
  let epoch = s.startEpoch;
  try {
    for (; epoch < s.cfg.epochs && !s.loop.interrupted; epoch++) {
      const steps = await trainEpoch(s, epoch);
      if (steps.steps < s.nb) {
        await endStoppedEpoch(s, epoch, steps);
        break;
      }
      if (await endEpoch(s, epoch, steps)) {
        epoch++;
        break;
      }
    }
  } finally {
    if (s.loop.acc) tf.dispose(Object.values(s.loop.acc));
    run.signal?.removeEventListener('abort', onAbort);
    s.tb.close();
    await s.replicas?.close();
  }
  return finishRun(s, epoch);
}
