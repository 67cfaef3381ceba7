import { describeModelYaml, type YoloDescription } from '@kd-edge/core';
import { WeightsError } from '../errors.js';
import type { StoredTensor } from '../model/weights-io.js';
import { oihwToHwio, type SourceWeights } from './source-weights.js';
import { readUltralyticsCheckpoint } from './torch-checkpoint.js';

/**
 * The module classes of a YOLOv5 v6.0+ detector that kd-trainer's network reproduces: ultralytics' Conv (Conv2d,
 * BatchNorm2d, SiLU or Identity), C3 with its Bottlenecks, SPPF, nn.Upsample, Concat and Detect.
 */
export const BUILT_MODULE_CLASSES: ReadonlySet<string> = new Set([
  'models.common.Conv',
  'models.common.C3',
  'models.common.Bottleneck',
  'models.common.SPPF',
  'models.common.Concat',
  'models.yolo.Detect',
  'torch.nn.modules.conv.Conv2d',
  'torch.nn.modules.batchnorm.BatchNorm2d',
  'torch.nn.modules.activation.SiLU',
  'torch.nn.modules.linear.Identity',
  'torch.nn.modules.pooling.MaxPool2d',
  'torch.nn.modules.upsampling.Upsample',
  'torch.nn.modules.container.Sequential',
  'torch.nn.modules.container.ModuleList',
]);

// Modules of YOLOv5 before v6.0 (v6.0 replaced Focus by a 6×6 Conv and SPP by SPPF; v4.0 replaced BottleneckCSP by C3).
const PRE_V6 = ['models.common.Focus', 'models.common.SPP', 'models.common.BottleneckCSP'];

/** Refuses, naming them, modules the checkpoint's network uses that kd-trainer would not compute the same way. */
function checkModules(file: string, modules: ReadonlyMap<string, string[]>): void {
  const other = [...modules].filter(([cls]) => !BUILT_MODULE_CLASSES.has(cls));
  if (other.length === 0) return;
  const list = other.map(([cls, paths]) => `${cls} (${paths.slice(0, 2).join(', ')}${paths.length > 2 ? `, +${paths.length - 2} more` : ''})`).join(', ');
  const hint = other.some(([cls]) => PRE_V6.includes(cls))
    ? ' It is a YOLOv5 network of before v6.0 (Focus/SPP/BottleneckCSP); re-train it with ultralytics/yolov5 v6.0 or later.'
    : other.some(([cls]) => cls.startsWith('torch.nn.modules.activation.') && !cls.endsWith('.MultiheadAttention'))
      ? ' kd-trainer computes SiLU activations only (the model yaml\'s `activation:` or a Conv argument set another).'
      : '';
  throw new WeightsError(
    `${file}: its network uses modules kd-trainer does not build: ${list}. kd-trainer builds YOLOv5 v6.0+ detectors from Conv (SiLU), C3, SPPF, nn.Upsample, Concat and Detect.${hint}`,
  );
}

/**
 * An ultralytics YOLOv5 `.pt` checkpoint (v6.x, v7.0) as {@link SourceWeights}: its `ema` entry, else
 * `model`, read without executing the pickle; the network from the model YAML it carries, with the
 * anchors of its Detect layer (AutoAnchor may have changed them) and its class names.
 */
export async function ptSource(file: string): Promise<SourceWeights> {
  const ck = await readUltralyticsCheckpoint(file);
  if (ck.yaml === null) throw new WeightsError(`${file}: the checkpoint carries no model YAML; kd-trainer cannot tell its network`);
  checkModules(file, ck.modules);
  let description: YoloDescription;
  try {
    description = describeModelYaml({ ...ck.yaml, nc: ck.nc, anchors: ck.anchorsPx });
  } catch (err) {
    throw new WeightsError(`${file}: its model YAML is not a network kd-trainer builds (${(err as Error).message})`, { cause: err });
  }
  if (ck.names.length === ck.nc) description.names = ck.names;
  const tensors = new Map<string, StoredTensor>();
  for (const [name, e] of ck.stateDict) {
    const t = { shape: e.shape, data: e.data };
    tensors.set(name, e.shape.length === 4 ? oihwToHwio(t) : t);
  }
  const notes = [`${file}: ${ck.className} (${ck.dtype}, '${ck.entry}' entry${ck.epoch !== null && ck.epoch >= 0 ? `, epoch ${ck.epoch}` : ''}${ck.date ? `, ${ck.date.slice(0, 10)}` : ''})`];
  return { file, description, tensors, notes };
}
