import { readFile } from 'node:fs/promises';
import { parseModelYaml, yoloDescription } from '@kd-edge/core';
import type { TrainConfig } from '../config.js';
import { WeightsError } from '../errors.js';
import type { DetectionModel, YoloDescription } from '../model/types.js';
import { buildFromArchive, loadModel, type ModelArchive } from '../model/weights-io.js';
import { createYoloModel } from '../model/yolo.js';
import { ModelEma } from './ema.js';

/**
 * The model to train and its EMA: from a checkpoint's EMA (its raw weights are restored later, with
 * the plug-ins' variables), from `--weights`, or new from `--model` (yolov5n…x or a model YAML).
 */
export async function buildModels(cfg: TrainConfig, nc: number, names: string[], resumed?: ModelArchive): Promise<{ model: DetectionModel; ema: ModelEma }> {
  if (resumed) {
    const emaModel = buildFromArchive(resumed).model as DetectionModel;
    return { model: createYoloModel(emaModel.description, { seed: cfg.seed }), ema: new ModelEma(emaModel) };
  }
  let model: DetectionModel;
  if (cfg.weights) {
    model = (await loadModel(cfg.weights)).model as DetectionModel;
    if (model.nc !== nc) throw new WeightsError(`${cfg.weights} has nc=${model.nc} but the dataset has nc=${nc}`);
  } else {
    model = createYoloModel({ ...(await describeModel(cfg.model, nc)), names }, { seed: cfg.seed });
  }
  const ema = new ModelEma(createYoloModel(model.description, { seed: cfg.seed }));
  ema.copyFrom(model);
  return { model, ema };
}

/** The description `--model` names: a YOLOv5 scale (yolov5n…x) or a model YAML, with the dataset's class count. */
export async function describeModel(model: string, nc: number): Promise<YoloDescription> {
  const m = /^yolov5([nsmlx])$/.exec(model);
  return m ? yoloDescription(m[1] as 'n', nc) : { ...parseModelYaml(await readFile(model, 'utf8')), nc };
}
