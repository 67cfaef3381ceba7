// @kd-edge/core/detect: Detection maths: boxes, letterbox geometry, YOLOv5 decode, NMS, COCO mAP.
// Also re-exported by the package root; import this path to load only what it needs.

// Detection maths: boxes, letterbox geometry, YOLOv5 decode, NMS, COCO mAP
export type { BoxXYXY, Detection, Annotation } from './types.js';
export { xywhToXyxy, xyxyToXywh, boxArea, boxIou } from './box.js';
export { letterbox, scaleBoxes } from './letterbox.js';
export type { LetterboxOptions, LetterboxGeometry } from './letterbox.js';
export { decodeYoloOutputs, decodedRowCount } from './decode.js';
export type { YoloHeadLevel } from './decode.js';
export { nonMaxSuppression, nmsBoxes } from './nms.js';
export type { NmsOptions } from './nms.js';
export { evaluateCoco } from './map.js';
export type { EvalImage, CocoEvalOptions, CocoEval, CocoClassResult } from './map.js';
export { precisionRecall } from './precision-recall.js';
export type { PrecisionRecall, ClassPrecisionRecall, PrecisionRecallOptions, ConfidenceCurves } from './precision-recall.js';
export { COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS } from './coco-match.js';
