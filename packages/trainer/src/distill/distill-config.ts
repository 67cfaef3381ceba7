import { TRAIN_SCHEMA, type TrainConfig } from '../config.js';
import { WeightsError } from '../errors.js';
import { resumedConfig, type Checkpoint } from '../train/checkpoint.js';
import type { DistillConfig } from './distill-schema.js';

/** The keys of `kd-trainer train`, which a distill config carries for the training loop. */
const TRAIN_KEYS = Object.keys(TRAIN_SCHEMA) as (keyof TrainConfig)[];

/** The distillation settings of a distill config: its keys beyond `train`'s. */
export type KdSettings = Omit<DistillConfig, keyof TrainConfig>;

/** The training loop's part of a distill config. */
export function trainConfigOf(cfg: DistillConfig): TrainConfig {
  return Object.fromEntries(TRAIN_KEYS.map((k) => [k, cfg[k]])) as TrainConfig;
}

/** The distillation part of a distill config (kept in its checkpoints, so --resume continues with it). */
export function kdSettingsOf(cfg: DistillConfig): KdSettings {
  return Object.fromEntries(Object.entries(cfg).filter(([k]) => !(TRAIN_KEYS as string[]).includes(k))) as KdSettings;
}

/**
 * The settings a resumed distillation continues with: the checkpoint's own, training and KD alike, with
 * this command's backend. It goes on with the distilled run only, not a `--compare` baseline.
 */
export function resumedDistillConfig(ck: Checkpoint, cfg: DistillConfig): DistillConfig {
  const kd = ck.meta.distill;
  if (typeof kd !== 'object' || kd === null) {
    throw new WeightsError(`${ck.file} is a checkpoint of kd-trainer train, not distill: resume it with kd-trainer train --resume`);
  }
  // Checkpoints from before --kd-stop and --kd-decay distilled to the last epoch at a constant α, and go on doing so.
  const settings = kd as Partial<KdSettings> & Omit<KdSettings, 'kd_stop' | 'kd_decay'>;
  return { ...resumedConfig(ck, trainConfigOf(cfg)), ...settings, kd_stop: settings.kd_stop ?? 'never', kd_decay: settings.kd_decay ?? 'none', compare: false };
}
