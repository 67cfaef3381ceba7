// @kd-edge/core/model: Model descriptions and planning, shared by the trainer and the ONNX exporter.
// Also re-exported by the package root; import this path to load only what it needs.

// Model descriptions and planning (shared by the trainer and the ONNX exporter)
export type { LayerSpec, YoloDescription, ClassifierDescription, ModelDescription, ModelWeights } from './description.js';
export {
  yoloDescription, parseModelYaml, describeModelYaml, validateYoloDescription, planYolo, YOLO_SCALES, DEFAULT_ANCHORS, YOLOV5_BACKBONE, YOLOV5_HEAD,
  SUPPORTED_MODULES,
} from './yolo-description.js';
export type { YoloScale, ScaleMultipliers, YoloPlan } from './yolo-description.js';
export { classifierDescription, planClassifier, CLASSIFY_HIDDEN } from './classifier-description.js';
export type { ClassifierDescriptionOptions, ClassifierPlan } from './classifier-description.js';
export { planLayers, convParamSpecs, layerParamSpecs, countTrainable, makeDivisible, pyRound } from './plan.js';
export type { LayerPlan, ConvPlan, BottleneckPlan, ParamSpec, ParamInit, PlanOptions } from './plan.js';
export { countParams } from './param-count.js';
export type { CountParamsOptions } from './param-count.js';
