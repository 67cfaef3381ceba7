import { ConfigError } from '@kd-edge/core';
import { BACKEND_NAMES } from '../backend/select.js';
import type { OptionsSchema, Resolved } from '../config.js';

/** Options of `kd-trainer predict` (ultralytics detect.py names and defaults). */
export const PREDICT_SCHEMA = {
  weights: { type: 'string', required: true, help: 'weights: .kdw, .pt, or an ONNX export (fp32, fp16, int8) run in ONNX Runtime' },
  source: { type: 'string', required: true, help: "an image, a folder, a glob ('dir/*.jpg') or a video file (needs ffmpeg)" },
  imgsz: { type: 'int', default: 640, min: 32, help: 'inference size (pixels, square; rounded up to a multiple of the stride)' },
  conf_thres: { type: 'number', default: 0.25, min: 0, max: 1, help: 'confidence threshold' },
  iou_thres: { type: 'number', default: 0.45, min: 0, max: 1, help: 'NMS IoU threshold' },
  max_det: { type: 'int', default: 1000, min: 1, help: 'maximum detections per image' },
  classes: { type: 'string', default: '', help: 'keep only these class indices: --classes 0 2 (or 0,2)' },
  agnostic_nms: { type: 'boolean', default: false, help: 'class-agnostic NMS' },
  save_txt: { type: 'boolean', default: false, help: 'save labels/<name>.txt: class and normalized xywh per line' },
  save_conf: { type: 'boolean', default: false, help: 'append the confidence to each --save-txt line' },
  nosave: { type: 'boolean', default: false, help: 'do not save annotated images or videos' },
  project: { type: 'string', default: 'runs/predict', help: 'save to project/name' },
  name: { type: 'string', default: 'exp', help: 'save to project/name' },
  exist_ok: { type: 'boolean', default: false, help: 'reuse project/name instead of incrementing' },
  line_thickness: { type: 'int', default: 3, min: 1, help: 'box line width (pixels)' },
  hide_labels: { type: 'boolean', default: false, help: 'draw boxes without class labels' },
  hide_conf: { type: 'boolean', default: false, help: 'draw labels without confidences' },
  backend: { type: 'enum', choices: BACKEND_NAMES, default: 'auto', help: 'compute backend for .kdw/.pt weights (ONNX files run in ONNX Runtime)' },
  device: { type: 'string', default: '', help: "ultralytics' device for .kdw/.pt weights: cpu, or a CUDA index (0) mapped to the tensorflow (CUDA) backend" },
} as const satisfies OptionsSchema;

/** Resolved `kd-trainer predict` options. */
export type PredictConfig = Resolved<typeof PREDICT_SCHEMA>;

/**
 * Parses `--classes`: indices separated by spaces or commas (a YAML list or the variadic flag
 * arrive joined), each an integer ≥ 0. Returns undefined for "all classes".
 */
export function parseClasses(text: string): number[] | undefined {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0) return undefined;
  return parts.map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0) throw new ConfigError('classes', p, 'class indices, integers ≥ 0');
    return n;
  });
}
