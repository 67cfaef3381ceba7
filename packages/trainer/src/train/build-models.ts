import { readFile } from 'node:fs/promises';
import { parseModelYaml, yoloDescription } from '@kd-edge/core';
import type { TrainConfig } from '../config.js';
import type { DetectionModel, YoloDescription } from '../model/types.js';
import { loadDetectionModel } from '../import/load-weights.js';
import { buildFromArchive, type ModelArchive } from '../model/weights-io.js';
import type { Logger } from '../util/logger.js';
import { createYoloModel } from '../model/yolo.js';
import { ModelEma } from './ema.js';

/**
 * The model to train and its EMA: from a checkpoint's EMA (its raw weights are restored later, with
 * the plug-ins' variables), from `--weights` (.kdw, .pt or ONNX, transferred by name and shape to the
 * dataset's classes), or new from `--model` (yolov5n…x or a model YAML).
 */
export async function buildModels(
  cfg: TrainConfig, nc: number, names: string[], log: Logger, resumed?: ModelArchive,
  prepare: (m: DetectionModel) => DetectionModel = (m) => m,
): Promise<{ model: DetectionModel; ema: ModelEma }> {
  if (resumed) {
    const emaModel = buildFromArchive(resumed).model as DetectionModel;
    return { model: createYoloModel(emaModel.description, { seed: cfg.seed }), ema: new ModelEma(emaModel) };
  }
  let model: DetectionModel;
  if (cfg.weights) {
    const loaded = await loadDetectionModel(cfg.weights, { nc, names, seed: cfg.seed });
    for (const note of loaded.notes) log.info(note);
    model = loaded.model;
  } else {
    model = createYoloModel({ ...(await describeModel(cfg.model, nc)), names }, { seed: cfg.seed });
  }
  model = prepare(model);
  const ema = new ModelEma(createYoloModel(model.description, { seed: cfg.seed }));
  ema.copyFrom(model);
  return { model, ema };
}

/** The description `--model` names: a YOLOv5 scale (yolov5n…x) or a model YAML, with the dataset's class count. */
export async function describeModel(model: string, nc: number): Promise<YoloDescription> {
  const m = /^yolov5([nsmlx])$/.exec(model);
  return m ? yoloDescription(m[1] as 'n', nc) : { ...parseModelYaml(await readFile(model, 'utf8')), nc };
}
