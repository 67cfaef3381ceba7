import { DEFAULT_ANCHORS, inspectModel, parsePyNames, type ModelProto, type OnnxIoInfo } from '@kd-edge/core';
import { IMAGENET_NORMALISATION, NORMALISATION_KEY, parseNormalisation, UNIT_NORMALISATION, type Normalisation } from '../classify/normalisation.js';
import { ExportError } from '../errors.js';

/** What an ONNX detector or classifier says about itself: enough to validate, calibrate and package it. */
export interface OnnxModelInfo {
  task: 'detect' | 'classify';
  names: string[];
  nc: number;
  /** Detection strides per level ([] for classifiers). */
  strides: number[];
  /** Pixel anchors per level ([] for classifiers). */
  anchors: number[][];
  /** True when strides/anchors were not in the metadata and YOLOv5's defaults were assumed. */
  assumedAnchors: boolean;
  input: OnnxIoInfo;
  output: OnnxIoInfo;
  outputLayout: 'yolov5-decoded' | 'yolov5-raw' | 'logits';
  /** Static [height, width], or undefined when dynamic. */
  imgsz: [number, number] | undefined;
  /** Static batch, or undefined when dynamic. */
  batch: number | undefined;
  /**
   * How pixels become the input: the `normalisation` metadata when present, else what the exporter's
   * convention is: ImageNet mean/std for classifiers (ultralytics YOLOv5-cls), 0..1 for detectors.
   */
  normalisation: Normalisation;
}

const num = (d: number | string | null | undefined): number | undefined => (typeof d === 'number' && d > 0 ? d : undefined);

/**
 * Reads task, class names, strides, anchors and I/O shapes from a kd-edge export's metadata, or
 * infers them for an ultralytics YOLOv5 export (`stride` and `names` metadata, output [N, A, 5+nc]).
 */
export function onnxModelInfo(model: ModelProto, file: string): OnnxModelInfo {
  const info = inspectModel(model);
  const meta = info.metadata;
  const input = info.inputs[0];
  const output = info.outputs.find((o) => o.name === 'output0') ?? info.outputs[0];
  if (input === undefined || output === undefined) throw new ExportError('EXPORT_MODEL_LAYOUT', `${file}: the model has no inputs or no outputs`);
  if (input.elemType !== 'float32' || input.shape?.length !== 4) {
    throw new ExportError('EXPORT_MODEL_LAYOUT', `${file}: input ${input.name} is ${input.elemType} [${input.shape?.join(', ') ?? '?'}]; expected float32 [N, 3, H, W]`);
  }
  const layout = (meta.output_layout ?? (output.shape?.length === 2 ? 'logits' : 'yolov5-decoded')) as OnnxModelInfo['outputLayout'];
  const task = meta.task === 'classify' || layout === 'logits' ? 'classify' : 'detect';
  const last = num(output.shape?.[output.shape.length - 1]);
  let names = meta.names !== undefined ? parsePyNames(meta.names) : undefined;
  const ncFromShape = last === undefined ? undefined : task === 'detect' ? last - 5 : last;
  if (names === undefined) {
    if (ncFromShape === undefined) throw new ExportError('EXPORT_MODEL_LAYOUT', `${file}: no 'names' metadata and the output shape does not give the class count`);
    names = Array.from({ length: ncFromShape }, (_, i) => `class${i}`);
  }
  if (ncFromShape !== undefined && ncFromShape !== names.length && layout !== 'yolov5-raw') {
    throw new ExportError('EXPORT_MODEL_LAYOUT', `${file}: ${names.length} class names in the metadata but the output has ${ncFromShape} classes`);
  }
  let strides: number[] = [];
  let anchors: number[][] = [];
  let assumedAnchors = false;
  if (task === 'detect') {
    strides = meta.strides !== undefined ? (JSON.parse(meta.strides) as number[]) : [8, 16, 32];
    anchors = meta.anchors !== undefined ? (JSON.parse(meta.anchors) as number[][]) : DEFAULT_ANCHORS.map((a) => [...a]);
    assumedAnchors = meta.anchors === undefined;
  }
  let normalisation: Normalisation;
  try {
    normalisation = meta[NORMALISATION_KEY] !== undefined ? parseNormalisation(meta[NORMALISATION_KEY])
      : { ...(task === 'classify' ? IMAGENET_NORMALISATION : UNIT_NORMALISATION) };
  } catch (e) {
    throw new ExportError('EXPORT_MODEL_LAYOUT', `${file}: ${(e as Error).message}`);
  }
  const [b, , h, w] = input.shape;
  const hh = num(h);
  const ww = num(w);
  return {
    task, names, nc: names.length, strides, anchors, assumedAnchors, input, output, outputLayout: layout,
    imgsz: hh !== undefined && ww !== undefined ? [hh, ww] : undefined,
    batch: num(b),
    normalisation,
  };
}
