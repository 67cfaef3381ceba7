import { parse as parseYaml } from 'yaml';
import type { LayerSpec, YoloDescription } from './description.js';
import { layerParamSpecs, planLayers, type LayerPlan, type ParamSpec } from './plan.js';

/** Standard YOLOv5 size names. */
export type YoloScale = 'n' | 's' | 'm' | 'l' | 'x';

/** Depth and width multipliers of a model size. */
export interface ScaleMultipliers {
  depth_multiple: number;
  width_multiple: number;
}

/** Multipliers of the standard sizes (ultralytics `models/yolov5{n,s,m,l,x}.yaml`). */
export const YOLO_SCALES: Readonly<Record<YoloScale, ScaleMultipliers>> = {
  n: { depth_multiple: 0.33, width_multiple: 0.25 },
  s: { depth_multiple: 0.33, width_multiple: 0.5 },
  m: { depth_multiple: 0.67, width_multiple: 0.75 },
  l: { depth_multiple: 1.0, width_multiple: 1.0 },
  x: { depth_multiple: 1.33, width_multiple: 1.25 },
};

/** Default pixel anchors for P3/8, P4/16 and P5/32, flattened [w0, h0, w1, h1, w2, h2]. */
export const DEFAULT_ANCHORS: readonly (readonly number[])[] = [
  [10, 13, 16, 30, 33, 23],
  [30, 61, 62, 45, 59, 119],
  [116, 90, 156, 198, 373, 326],
];

/** Backbone of the v6.0+ YOLOv5 yaml, unscaled. */
export const YOLOV5_BACKBONE: readonly LayerSpec[] = [
  [-1, 1, 'Conv', [64, 6, 2, 2]], // 0-P1/2
  [-1, 1, 'Conv', [128, 3, 2]], // 1-P2/4
  [-1, 3, 'C3', [128]],
  [-1, 1, 'Conv', [256, 3, 2]], // 3-P3/8
  [-1, 6, 'C3', [256]],
  [-1, 1, 'Conv', [512, 3, 2]], // 5-P4/16
  [-1, 9, 'C3', [512]],
  [-1, 1, 'Conv', [1024, 3, 2]], // 7-P5/32
  [-1, 3, 'C3', [1024]],
  [-1, 1, 'SPPF', [1024, 5]], // 9
];

/** Head of the v6.0+ YOLOv5 yaml, unscaled. */
export const YOLOV5_HEAD: readonly LayerSpec[] = [
  [-1, 1, 'Conv', [512, 1, 1]],
  [-1, 1, 'nn.Upsample', [null, 2, 'nearest']],
  [[-1, 6], 1, 'Concat', [1]], // cat backbone P4
  [-1, 3, 'C3', [512, false]], // 13
  [-1, 1, 'Conv', [256, 1, 1]],
  [-1, 1, 'nn.Upsample', [null, 2, 'nearest']],
  [[-1, 4], 1, 'Concat', [1]], // cat backbone P3
  [-1, 3, 'C3', [256, false]], // 17 (P3/8-small)
  [-1, 1, 'Conv', [256, 3, 2]],
  [[-1, 14], 1, 'Concat', [1]], // cat head P4
  [-1, 3, 'C3', [512, false]], // 20 (P4/16-medium)
  [-1, 1, 'Conv', [512, 3, 2]],
  [[-1, 10], 1, 'Concat', [1]], // cat head P5
  [-1, 3, 'C3', [1024, false]], // 23 (P5/32-large)
  [[17, 20, 23], 1, 'Detect', ['nc', 'anchors']], // Detect(P3, P4, P5)
];

/** Modules a description may use (ultralytics names). */
export const SUPPORTED_MODULES = ['Conv', 'C3', 'SPPF', 'nn.Upsample', 'Concat', 'Detect'] as const;

function cloneLayers(layers: readonly LayerSpec[]): LayerSpec[] {
  return layers.map(([f, n, m, args]) => [Array.isArray(f) ? [...f] : f, n, m, [...args]]);
}

function resolveMultipliers(scale: YoloScale | ScaleMultipliers): { name: string; mult: ScaleMultipliers } {
  if (typeof scale === 'string') {
    const mult = YOLO_SCALES[scale];
    if (mult === undefined) {
      throw new RangeError(`scale: ${JSON.stringify(scale)} is not one of ${Object.keys(YOLO_SCALES).join(', ')}`);
    }
    return { name: scale, mult: { ...mult } };
  }
  const mult = { depth_multiple: scale.depth_multiple, width_multiple: scale.width_multiple };
  const std = (Object.keys(YOLO_SCALES) as YoloScale[]).find(
    (k) => YOLO_SCALES[k].depth_multiple === mult.depth_multiple && YOLO_SCALES[k].width_multiple === mult.width_multiple,
  );
  return { name: std ?? 'custom', mult };
}

/**
 * Description of a standard YOLOv5 (v6.0+) detector of the given size and class count.
 * @example yoloDescription('n', 3) // yolov5n for 3 classes with the COCO anchors
 */
export function yoloDescription(
  scale: YoloScale | ScaleMultipliers,
  nc: number,
  anchors: number[][] = DEFAULT_ANCHORS.map((a) => [...a]),
): YoloDescription {
  const { name, mult } = resolveMultipliers(scale);
  const desc: YoloDescription = {
    type: 'yolov5',
    scale: name,
    nc,
    depth_multiple: mult.depth_multiple,
    width_multiple: mult.width_multiple,
    anchors: anchors.map((a) => [...a]),
    backbone: cloneLayers(YOLOV5_BACKBONE),
    head: cloneLayers(YOLOV5_HEAD),
  };
  validateYoloDescription(desc);
  return desc;
}

function isPositiveFinite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}

function checkLayer(spec: unknown, where: string): void {
  if (!Array.isArray(spec) || spec.length !== 4) {
    throw new RangeError(`${where}: expected [from, repeats, module, args], got ${JSON.stringify(spec)}`);
  }
  const [f, n, m, args] = spec as unknown[];
  const fromOk = Number.isInteger(f) || (Array.isArray(f) && f.length > 0 && f.every((v) => Number.isInteger(v)));
  if (!fromOk) throw new RangeError(`${where}.from: expected an integer or a list of integers, got ${JSON.stringify(f)}`);
  if (!Number.isInteger(n) || (n as number) < 1) {
    throw new RangeError(`${where}.repeats: expected an integer >= 1, got ${JSON.stringify(n)}`);
  }
  if (typeof m !== 'string' || !(SUPPORTED_MODULES as readonly string[]).includes(m)) {
    throw new RangeError(`${where}.module: ${JSON.stringify(m)} is not one of ${SUPPORTED_MODULES.join(', ')}`);
  }
  if (!Array.isArray(args)) throw new RangeError(`${where}.args: expected a list, got ${JSON.stringify(args)}`);
}

/**
 * Checks the fields of a detector description (class count, multipliers, anchors, layer lists) and
 * throws a RangeError naming the first bad field. Layer wiring is checked when the model is planned.
 */
export function validateYoloDescription(desc: YoloDescription): void {
  if (desc.type !== 'yolov5') throw new RangeError(`type: ${JSON.stringify(desc.type)} is not 'yolov5'`);
  if (!Number.isInteger(desc.nc) || desc.nc < 1) {
    throw new RangeError(`nc: expected an integer >= 1, got ${JSON.stringify(desc.nc)}`);
  }
  if (!isPositiveFinite(desc.depth_multiple)) {
    throw new RangeError(`depth_multiple: expected a number > 0, got ${JSON.stringify(desc.depth_multiple)}`);
  }
  if (!isPositiveFinite(desc.width_multiple)) {
    throw new RangeError(`width_multiple: expected a number > 0, got ${JSON.stringify(desc.width_multiple)}`);
  }
  const a = desc.anchors;
  if (!Array.isArray(a) || a.length === 0) {
    throw new RangeError(`anchors: expected a non-empty list of per-level pixel anchors, got ${JSON.stringify(a)}`);
  }
  const len0 = Array.isArray(a[0]) ? a[0].length : -1;
  a.forEach((level, i) => {
    if (!Array.isArray(level) || level.length === 0 || level.length % 2 !== 0 || level.length !== len0
      || !level.every(isPositiveFinite)) {
      throw new RangeError(
        `anchors[${i}]: expected ${len0 > 0 ? len0 : 'an even number of'} positive pixel values [w, h, ...], ` +
          `got ${JSON.stringify(level)}`,
      );
    }
  });
  if (!Array.isArray(desc.backbone) || desc.backbone.length === 0) {
    throw new RangeError('backbone: expected a non-empty list of layers');
  }
  if (!Array.isArray(desc.head) || desc.head.length === 0) {
    throw new RangeError('head: expected a non-empty list of layers');
  }
  desc.backbone.forEach((l, i) => checkLayer(l, `backbone[${i}]`));
  desc.head.forEach((l, i) => checkLayer(l, `head[${i}]`));
  const last = desc.head[desc.head.length - 1]!;
  if (last[2] !== 'Detect') throw new RangeError(`head[${desc.head.length - 1}].module: the last layer must be Detect`);
  const nLevels = Array.isArray(last[0]) ? last[0].length : 1;
  if (nLevels !== a.length) {
    throw new RangeError(`anchors: ${a.length} levels given but Detect takes ${nLevels} inputs`);
  }
  // Resolving every shape checks the wiring (indices, strides, module arguments).
  planLayers([...desc.backbone, ...desc.head], desc);
}

function normaliseArg(v: unknown): unknown {
  // ultralytics evals string args; the ones that matter here are None and the booleans.
  if (v === 'None') return null;
  if (v === 'True') return true;
  if (v === 'False') return false;
  return v;
}

function sameLayers(a: readonly LayerSpec[], b: readonly LayerSpec[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Parses an ultralytics model yaml (`yolov5s.yaml` style: nc, depth_multiple, width_multiple, anchors,
 * backbone, head) into a validated description. Throws RangeError naming the bad field.
 * @example parseModelYaml(fs.readFileSync('yolov5s.yaml', 'utf8'))
 */
export function parseModelYaml(text: string): YoloDescription {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new RangeError(`model yaml: cannot parse (${(err as Error).message})`, { cause: err });
  }
  return describeModelYaml(doc);
}

/**
 * The description of an already parsed ultralytics model yaml (the `yaml` dict an ultralytics checkpoint
 * carries, say). Throws RangeError naming the bad field.
 */
export function describeModelYaml(doc: unknown): YoloDescription {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new RangeError('model yaml: expected a mapping with nc, depth_multiple, width_multiple, anchors, backbone, head');
  }
  const d = doc as Record<string, unknown>;
  if (typeof d.anchors === 'number') {
    throw new RangeError('anchors: a count of anchors (autoanchor) is not supported; give pixel anchors per level');
  }
  // ultralytics v6.2+: `activation: nn.LeakyReLU(0.1)` replaces Conv's SiLU everywhere (parse_model evals it).
  const act = d.activation;
  if (act !== undefined && act !== null && act !== '' && act !== false
    && !(typeof act === 'string' && /^(nn\.)?SiLU\(\s*(inplace\s*=\s*(True|False))?\s*\)$/.test(act.trim()))) {
    throw new RangeError(`activation: ${JSON.stringify(act)} is not supported; kd-edge builds Conv layers with SiLU (nn.SiLU())`);
  }
  const layers = (key: 'backbone' | 'head'): LayerSpec[] => {
    const v = d[key];
    if (!Array.isArray(v)) throw new RangeError(`${key}: expected a list of [from, repeats, module, args]`);
    return v.map((l, i) => {
      checkLayer(l, `${key}[${i}]`);
      const [f, n, m, args] = l as LayerSpec;
      return [Array.isArray(f) ? [...f] : f, n, m, args.map(normaliseArg)] as LayerSpec;
    });
  };
  const depth = d.depth_multiple ?? 1.0;
  const width = d.width_multiple ?? 1.0;
  const desc: YoloDescription = {
    type: 'yolov5',
    scale: 'custom',
    nc: d.nc as number,
    depth_multiple: depth as number,
    width_multiple: width as number,
    anchors: Array.isArray(d.anchors) ? (d.anchors as unknown[]).map((a) => (Array.isArray(a) ? [...a] : a) as number[]) : (d.anchors as number[][]),
    backbone: layers('backbone'),
    head: layers('head'),
  };
  if (Array.isArray(d.names)) desc.names = d.names.map(String);
  else if (d.names !== null && typeof d.names === 'object') {
    desc.names = Object.entries(d.names as Record<string, unknown>)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([, v]) => String(v));
  }
  validateYoloDescription(desc);
  const std = (Object.keys(YOLO_SCALES) as YoloScale[]).find(
    (k) => YOLO_SCALES[k].depth_multiple === desc.depth_multiple && YOLO_SCALES[k].width_multiple === desc.width_multiple,
  );
  if (std !== undefined && sameLayers(desc.backbone, YOLOV5_BACKBONE) && sameLayers(desc.head, YOLOV5_HEAD)) {
    desc.scale = std;
  }
  return desc;
}

/** A detector description resolved into layers, state tensors and level strides. */
export interface YoloPlan {
  layers: LayerPlan[];
  specs: ParamSpec[];
  strides: number[];
  /** Input sides must be multiples of this (the largest stride in the network). */
  maxStride: number;
}

/** Plans a detector without allocating anything: shapes of every state tensor, strides of the levels. */
export function planYolo(desc: YoloDescription): YoloPlan {
  validateYoloDescription(desc);
  const layers = planLayers([...desc.backbone, ...desc.head], {
    depth_multiple: desc.depth_multiple,
    width_multiple: desc.width_multiple,
    nc: desc.nc,
    anchors: desc.anchors,
  });
  const detect = layers[layers.length - 1]!;
  if (detect.type !== 'Detect') throw new RangeError('head: the last layer must be Detect');
  const maxStride = layers.reduce((m, l) => Math.max(m, l.stride), 1);
  if (!layers.every((l) => Number.isInteger(l.stride))) {
    throw new RangeError('head: an upsample brings the resolution above the input resolution');
  }
  return { layers, specs: layers.flatMap(layerParamSpecs), strides: detect.levels.map((lv) => lv.stride), maxStride };
}
