// Errors
export { KdEdgeError, ConfigError } from './errors.js';

// Detection maths: boxes, letterbox geometry, YOLOv5 decode, NMS, COCO mAP
export type { BoxXYXY, Detection, Annotation } from './detect/types.js';
export { xywhToXyxy, xyxyToXywh, boxArea, boxIou } from './detect/box.js';
export { letterbox, scaleBoxes } from './detect/letterbox.js';
export type { LetterboxOptions, LetterboxGeometry } from './detect/letterbox.js';
export { decodeYoloOutputs, decodedRowCount } from './detect/decode.js';
export type { YoloHeadLevel } from './detect/decode.js';
export { nonMaxSuppression, nmsBoxes } from './detect/nms.js';
export type { NmsOptions } from './detect/nms.js';
export { evaluateCoco } from './detect/map.js';
export type { EvalImage, CocoEvalOptions, CocoEval, CocoClassResult } from './detect/map.js';
export { precisionRecall } from './detect/precision-recall.js';
export type { PrecisionRecall, ClassPrecisionRecall } from './detect/precision-recall.js';
export { COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS } from './detect/coco-match.js';

// Model descriptions and planning (shared by the trainer and the ONNX exporter)
export type { LayerSpec, YoloDescription, ClassifierDescription, ModelDescription, ModelWeights } from './model/description.js';
export {
  yoloDescription, parseModelYaml, validateYoloDescription, planYolo, YOLO_SCALES, DEFAULT_ANCHORS, YOLOV5_BACKBONE, YOLOV5_HEAD,
  SUPPORTED_MODULES,
} from './model/yolo-description.js';
export type { YoloScale, ScaleMultipliers, YoloPlan } from './model/yolo-description.js';
export { classifierDescription, planClassifier, CLASSIFY_HIDDEN } from './model/classifier-description.js';
export type { ClassifierDescriptionOptions, ClassifierPlan } from './model/classifier-description.js';
export { planLayers, convParamSpecs, layerParamSpecs, countTrainable, makeDivisible, pyRound } from './model/plan.js';
export type { LayerPlan, ConvPlan, BottleneckPlan, ParamSpec, ParamInit, PlanOptions } from './model/plan.js';
export { countParams } from './model/param-count.js';
export type { CountParamsOptions } from './model/param-count.js';

// ONNX export of kd-trainer models
export { exportOnnx, EXPORT_OPSETS } from './export/export-onnx.js';
export type { OnnxExportOptions, ExportOpset } from './export/export-onnx.js';
export { pyNamesDict, parsePyNames } from './export/python-repr.js';

// ONNX model I/O
export { decodeModel } from './onnx/decode.js';
export { encodeModel } from './onnx/encode.js';
export type * from './onnx/types.js';
export { DataType, AttributeType } from './onnx/types.js';
export { OnnxError } from './onnx/onnx-error.js';
