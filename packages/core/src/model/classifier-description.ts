import type { ClassifierDescription, LayerSpec } from './description.js';
import { convParamSpecs, layerParamSpecs, planLayers, type ConvPlan, type LayerPlan, type ParamSpec } from './plan.js';
import { YOLO_SCALES, YOLOV5_BACKBONE, type ScaleMultipliers, type YoloScale } from './yolo-description.js';

/** Width of the Classify head's 1×1 conv (ultralytics uses EfficientNet-B0's 1280 at every size). */
export const CLASSIFY_HIDDEN = 1280;

/** Options of classifierDescription. */
export interface ClassifierDescriptionOptions {
  /** Dropout probability before the linear layer, applied in training only (default 0). */
  dropout?: number;
  names?: string[];
}

/**
 * Description of a YOLOv5-cls style classifier: backbone layers 0–8 scaled by the multipliers, then a
 * Classify head (Conv 1×1 to 1280, global average pool, dropout, linear to nc).
 * @example classifierDescription('n', 10)
 */
export function classifierDescription(
  scale: YoloScale | ScaleMultipliers,
  nc: number,
  opts: ClassifierDescriptionOptions = {},
): ClassifierDescription {
  let name: string;
  let mult: ScaleMultipliers;
  if (typeof scale === 'string') {
    const m = YOLO_SCALES[scale];
    if (m === undefined) throw new RangeError(`scale: ${JSON.stringify(scale)} is not one of ${Object.keys(YOLO_SCALES).join(', ')}`);
    name = scale;
    mult = { ...m };
  } else {
    name = 'custom';
    mult = { depth_multiple: scale.depth_multiple, width_multiple: scale.width_multiple };
  }
  const desc: ClassifierDescription = {
    type: 'classifier',
    scale: name,
    nc,
    depth_multiple: mult.depth_multiple,
    width_multiple: mult.width_multiple,
    backbone: YOLOV5_BACKBONE.slice(0, 9).map(([f, n, m, args]) => [f, n, m, [...args]]),
    dropout: opts.dropout ?? 0,
  };
  if (opts.names !== undefined) desc.names = [...opts.names];
  planClassifier(desc);
  return desc;
}

/** A classifier description resolved into layers and state tensors. */
export interface ClassifierPlan {
  layers: LayerPlan[];
  head: { conv: ConvPlan; prefix: string; nc: number; dropout: number };
  specs: ParamSpec[];
  maxStride: number;
}

/** Validates a classifier description and plans it without allocating anything. */
export function planClassifier(desc: ClassifierDescription): ClassifierPlan {
  if (desc.type !== 'classifier') throw new RangeError(`type: ${JSON.stringify(desc.type)} is not 'classifier'`);
  if (!Number.isInteger(desc.nc) || desc.nc < 1) throw new RangeError(`nc: expected an integer >= 1, got ${JSON.stringify(desc.nc)}`);
  for (const key of ['depth_multiple', 'width_multiple'] as const) {
    const v = desc[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new RangeError(`${key}: expected a number > 0, got ${JSON.stringify(v)}`);
  }
  const dropout = desc.dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) {
    throw new RangeError(`dropout: expected a number in [0, 1), got ${JSON.stringify(dropout)}`);
  }
  const backbone = (desc.backbone ?? YOLOV5_BACKBONE.slice(0, 9)) as LayerSpec[];
  if (!Array.isArray(backbone) || backbone.length === 0) throw new RangeError('backbone: expected a non-empty list of layers');
  const layers = planLayers(backbone, {
    depth_multiple: desc.depth_multiple,
    width_multiple: desc.width_multiple,
    nc: desc.nc,
    anchors: [[1, 1]],
  });
  if (layers.some((l) => l.type === 'Detect')) throw new RangeError('backbone: a classifier cannot contain Detect');
  const i = layers.length;
  const prefix = `model.${i}`;
  const conv: ConvPlan = { prefix: `${prefix}.conv`, c1: layers[i - 1]!.c2, c2: CLASSIFY_HIDDEN, k: 1, s: 1, p: 0, act: true };
  const bound = 1 / Math.sqrt(CLASSIFY_HIDDEN);
  const specs: ParamSpec[] = [
    ...layers.flatMap(layerParamSpecs),
    ...convParamSpecs(conv),
    // Linear weight kept as [in, out] (matMul layout); PyTorch stores [out, in].
    { name: `${prefix}.linear.weight`, shape: [CLASSIFY_HIDDEN, desc.nc], trainable: true, init: { kind: 'uniform', bound } },
    { name: `${prefix}.linear.bias`, shape: [desc.nc], trainable: true, init: { kind: 'uniform', bound } },
  ];
  const maxStride = layers.reduce((m, l) => Math.max(m, l.stride), 1);
  return { layers, head: { conv, prefix, nc: desc.nc, dropout }, specs, maxStride };
}
