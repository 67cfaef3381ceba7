import { checkAnchors, type AnchorData } from '../data/autoanchor.js';
import type { DatasetItem } from '../data/types.js';
import type { DetectionModel } from '../model/types.js';
import { createYoloModel } from '../model/yolo.js';
import type { Logger } from '../util/logger.js';

/** AutoAnchor's view of a split: each image's size (the training size when unknown) and its labels' normalised sizes. */
export function anchorData(items: readonly DatasetItem[], imgsz: number): AnchorData {
  const shapes: [number, number][] = [];
  const labels: [number, number][][] = [];
  for (const it of items) {
    shapes.push(it.size ?? [imgsz, imgsz]);
    const wh: [number, number][] = [];
    for (let r = 0; r + 4 < it.labels.length; r += 5) wh.push([it.labels[r + 3]!, it.labels[r + 4]!]);
    labels.push(wh);
  }
  return { shapes, labels };
}

/**
 * ultralytics' check_anchors before training: when the model's anchors recall less than 98 % of the training
 * labels, evolved anchors replace them (the network's weights unchanged). Returns the model to train: the
 * same one, or a copy with the new anchors (the old one disposed).
 */
export function fitAnchors(model: DetectionModel, items: readonly DatasetItem[], opts: { imgsz: number; thr: number; seed: number; logger: Logger }): DetectionModel {
  const r = checkAnchors(model.anchors, model.strides, anchorData(items, opts.imgsz), { imgsz: opts.imgsz, thr: opts.thr, seed: opts.seed, logger: opts.logger });
  if (!r.changed) return model;
  const next = createYoloModel({ ...model.description, anchors: r.anchors }, { seed: opts.seed });
  for (const [name, v] of [...model.params, ...model.buffers]) (next.params.get(name) ?? next.buffers.get(name))!.assign(v);
  model.dispose();
  return next;
}
