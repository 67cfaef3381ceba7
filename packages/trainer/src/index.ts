// Training and validation entry points
export { train } from './train/trainer.js';
export type { TrainResult, TrainRunOptions, StepInfo } from './train/types.js';
export type {
  TrainHooks, ExtraLossHook, ExtraLossModule, BatchExtraLoss, BatchPosition, TrainStart, EpochEnd, EpochLogs,
} from './train/hooks.js';
export type { ExtraLoss } from './train/step.js';
export { validate, formatValTable, annotationsOf } from './val/validator.js';
export type { ValidateOptions, ValResult, ClassMetrics, DetectionMetrics } from './val/validator.js';
export { runVal } from './val/run-val.js';
export type { RunValResult } from './val/run-val.js';

// Configuration
export {
  TRAIN_SCHEMA, VAL_SCHEMA, SYNTH_SCHEMA, HYP_KEYS, resolveOptions, resolveHyp, readYamlMapping, normaliseKey,
} from './config.js';
export type { TrainConfig, ValConfig, SynthConfig, OptionSpec, OptionsSchema, Resolved } from './config.js';
export { HYP_SCRATCH_LOW } from './train/hyp.js';
export type { Hyp } from './train/hyp.js';

// Compute backends
export { selectBackend, BACKEND_NAMES } from './backend/select.js';
export type { BackendName, SelectedBackend } from './backend/select.js';
export { registerWasmKernels } from './backend/kernels/register-all.js';
export { ensureTrainingGradients } from './backend/register-gradients.js';

// Datasets
export { loadDatasetConfig } from './data/dataset-yaml.js';
export { scanSplit, imageToLabelPath } from './data/scan.js';
export { DataLoader } from './data/loader.js';
export type { DataLoaderOptions, LoaderStats } from './data/loader.js';
export { evalLoader } from './data/eval-loader.js';
export type { EvalLoaderOptions } from './data/eval-loader.js';
export { loadDataset } from './data/load-dataset.js';
export type { LoadedDataset } from './data/load-dataset.js';
export { synthesizeDataset } from './data/synth.js';
export type { SynthOptions } from './data/synth.js';
export { SYNTH_DOMAINS, SYNTH_DOMAIN_NAMES } from './data/synth-domain.js';
export type { SynthDomain } from './data/synth-domain.js';
export type { DatasetConfig, DatasetItem, AugmentHyp, Batch, Shard, ImageShape } from './data/types.js';

// Models and weights
export {
  yoloDescription, parseModelYaml, validateYoloDescription, YOLO_SCALES, DEFAULT_ANCHORS, planYolo, classifierDescription, countParams,
} from '@kd-edge/core';
export type { YoloScale, ScaleMultipliers } from '@kd-edge/core';
export { createYoloModel } from './model/yolo.js';
export { createClassifier } from './model/classifier.js';
export { saveWeights, loadModel, writeTensorArchive, readTensorArchive, KDW_MAGIC } from './model/weights-io.js';
export type { StoredTensor, SaveWeightsExtra, LoadedModel } from './model/weights-io.js';
export type {
  DetectionModel, ClassificationModel, TrainableModel, ModelDescription, YoloDescription, ClassifierDescription, LayerSpec,
} from './model/types.js';

// Losses and optimisation
export { yoloLoss, scaleLossHyp, bceWithLogits } from './loss/yolo-loss.js';
export type { LossHyp, YoloLossTerms, LossModelInfo } from './loss/yolo-loss.js';
export { buildTargets } from './loss/build-targets.js';
export { NesterovSgd, clipGradNorm } from './train/sgd.js';
export { ModelEma } from './train/ema.js';
export { lrLambda, warmupStep } from './train/schedule.js';

// Logs
export { SummaryWriter } from './log/event-writer.js';
export { readEvents } from './log/event-reader.js';
export type { TfEvent, SummaryValue, SummaryImage } from './log/event-reader.js';
export { ResultsCsv, readResultsCsv, RESULTS_COLUMNS } from './log/results-csv.js';
export { plotResults } from './log/results-plot.js';
export { drawDetections } from './log/draw-boxes.js';
export { ProgressBar } from './log/progress.js';

// Errors and logging
export { DatasetError, BackendError, WeightsError, ExportError } from './errors.js';
export { consoleLogger, silentLogger, memoryLogger } from './util/logger.js';
export type { Logger } from './util/logger.js';

// Export, packaging (the kd-trainer export / package commands)
export { runExport, formatExportTable, parseFormats, parseExclude, headDecodePattern, summariseSkipped } from './export/run-export.js';
export type { ExportReport, ExportRow } from './export/run-export.js';
export { EXPORT_SCHEMA, EXPORT_FORMATS } from './export/export-schema.js';
export type { ExportConfig, ExportFormat } from './export/export-schema.js';
export { runPackage } from './export/run-package.js';
export type { PackageOptions } from './export/run-package.js';
export { copyReplaySet, REPLAY_SPLITS } from './export/package-replay.js';
export type { ReplaySetOptions, ReplaySplit } from './export/package-replay.js';
export { modelWeights } from './export/model-weights.js';
export { onnxModelInfo } from './export/model-info.js';
export type { OnnxModelInfo } from './export/model-info.js';
export { loadModelWeights, openModelArchive, writeModelArchive } from './model/weights-io.js';
export type { LoadedWeights } from './model/weights-io.js';
export { OnnxDetectionPredictor, nhwcToNchw } from './val/onnx-predictor.js';
export { validateWith } from './val/validator.js';
export type { DetectionPredictor } from './val/validator.js';

// Knowledge distillation
export { runDistill, formatCompareTable, detectFeaturePairs } from './distill/run-distill.js';
export { pseudoLabels, pseudoDetections } from './distill/pseudo-labels.js';
export type { PseudoLabelOptions } from './distill/pseudo-labels.js';
export type { DistillResult, DistillRunOptions, CompareRow } from './distill/run-distill.js';
export { DISTILL_SCHEMA } from './distill/distill-schema.js';
export type { DistillConfig } from './distill/distill-schema.js';
export { DistillSession } from './distill/distill-session.js';
export type { DistillSettings, DistillStepInfo } from './distill/distill-session.js';
export { buildDistillLoss, DISTILL_ITEM_NAMES, adapterParamName } from './distill/distill-loss.js';
export type { DistillSpec, DistillJob, FeatureDistillPair } from './distill/distill-loss.js';
export type { Teacher, TeacherOutput, HeadGeometry, FeatureMap, StudentOutput } from './distill/types.js';
export { openTeacher } from './distill/teacher/open-teacher.js';
export type { OpenTeacherOptions } from './distill/teacher/open-teacher.js';
export { OnnxTeacher } from './distill/teacher/onnx-teacher.js';
export type { OnnxTeacherOptions, TeacherExecutionProvider } from './distill/teacher/onnx-teacher.js';
export { TfjsTeacher } from './distill/teacher/tfjs-teacher.js';
export { TeacherCache } from './distill/teacher/teacher-cache.js';
export type { TeacherCacheStats } from './distill/teacher/teacher-cache.js';
export { checkCompatibility } from './distill/teacher/compat.js';
export type { StudentGeometry, CompatibilityWarning } from './distill/teacher/compat.js';
export { TeacherError } from './distill/teacher/teacher-error.js';
export { KD_LOSSES, KD_LOSS_NAMES, parseKdLosses, alphaAt, combineLosses } from './distill/losses/registry.js';
export type { KdLossName, AlphaSchedule } from './distill/losses/registry.js';
export { kdLoss, mixKd, KD_DEFAULTS } from './distill/losses/kd.js';
export { yoloKdLoss } from './distill/losses/yolo-kd.js';
export type { YoloKdOptions, YoloKdTerms, YoloKdClsMode, YoloKdBoxMode } from './distill/losses/yolo-kd.js';
export { featureLoss } from './distill/losses/feature.js';
export type { FeatureLossOptions, FeatureLossTerms } from './distill/losses/feature.js';
export { createFeatureAdapters, FeatureAdapters } from './distill/losses/feature-adapters.js';
export { KdLossError } from './distill/losses/kd-loss-error.js';

// On-device adaptation (kd-trainer adapt): label captured frames with a teacher, fine-tune, accept or reject, export
export { runAdapt } from './adapt/run-adapt.js';
export type { AdaptRunOptions } from './adapt/run-adapt.js';
export { acquireJobLock, readJobLock, lockOwnerAlive, processStartTime, JOB_LOCK_FILE } from './adapt/job-lock.js';
export type { JobLock, JobLockOwner, AcquireJobLockOptions } from './adapt/job-lock.js';
export { watchParent, parentPidFromEnv, PARENT_PID_ENV } from './adapt/parent-watch.js';
export type { ParentWatch, ParentWatchOptions } from './adapt/parent-watch.js';
export { ADAPT_SCHEMA, ADAPT_HYP } from './adapt/adapt-schema.js';
export type { AdaptConfig } from './adapt/adapt-schema.js';
export { formatAdaptTable } from './adapt/adapt-report.js';
export type { AdaptReport, AdaptResult, AdaptCancelled, AdaptProgress, AdaptStage } from './adapt/adapt-report.js';
export { labelFrames, frameSources } from './adapt/label-frames.js';
export type { LabelFramesOptions, LabelSummary, LabelInputs, LabelledFrame, LabelProgress, ReplaySummary } from './adapt/label-frames.js';
export { replaySources, replayChoice } from './adapt/replay-images.js';
export { holdoutSplit } from './adapt/holdout-split.js';
export { fineTune } from './adapt/fine-tune.js';
export type { FineTuneOptions, TrainingRecord, AdaptRecipe, StopReason, TrainProgress } from './adapt/fine-tune.js';
export { evaluateJob, evaluateModel } from './adapt/evaluate.js';
export type { AdaptFigures, SetFigures, ModelFigures, EvaluateProgress, EvaluateJobOptions, EvaluateModelOptions } from './adapt/evaluate.js';
export { decideAcceptance } from './adapt/acceptance.js';
export type { AcceptanceRule, AcceptanceCheck, AcceptanceDecision } from './adapt/acceptance.js';
export { exportAdapted } from './adapt/export-adapted.js';
export type { AdaptExport, ExportAdaptedOptions, ExportProgress } from './adapt/export-adapted.js';
export { jobPaths } from './adapt/job-files.js';
export type { JobPaths, JobState } from './adapt/job-files.js';
export { AdaptError } from './adapt/adapt-error.js';
export type { AdaptErrorCode } from './adapt/adapt-error.js';

// Image classification (kd-trainer classify train | val | distill)
export { trainClassifier, classifyImgSize } from './classify/train.js';
export type { ClassifyTrainResult, ClassifyRunOptions, ClassifyKd, ClassifyStepInfo } from './classify/train.js';
export { runClassifyVal } from './classify/run-val.js';
export type { ClassifyValRun } from './classify/run-val.js';
export { runClassifyDistill, checkClassifyTeacher, formatClassifyCompare } from './classify/distill.js';
export type { ClassifyDistillResult, ClassifyDistillRunOptions, ClassifyCompareRow } from './classify/distill.js';
export { CLASSIFY_TRAIN_SCHEMA, CLASSIFY_VAL_SCHEMA, CLASSIFY_DISTILL_SCHEMA } from './classify/classify-schema.js';
export type { ClassifyTrainConfig, ClassifyValConfig, ClassifyDistillConfig } from './classify/classify-schema.js';
export { loadClassifyDataset, scanClassifySplit, classFolders, CLASSIFY_SPLITS } from './classify/dataset.js';
export type { ClassifyDataset, ClassifyItem, ClassifySplit } from './classify/dataset.js';
export { ClassifyLoader } from './classify/loader.js';
export type { ClassifyBatch, ClassifyLoaderOptions } from './classify/loader.js';
export {
  CLASSIFY_AUGMENT_DEFAULTS, randomResizedCropBox, centerCropBox, trainTransform, valTransform, colorJitter, normaliseInto,
} from './classify/transforms.js';
export type { ClassifyAugment, CropBox } from './classify/transforms.js';
export { smoothedCrossEntropy, smoothedCrossEntropyValues, LABEL_SMOOTHING } from './classify/loss.js';
export { trueClassRanks, accuracyOf } from './classify/metrics.js';
export type { ClassAccuracy } from './classify/metrics.js';
export { validateClassifier, formatClassifyTable } from './classify/validate.js';
export type { ClassifyValResult, ValidateClassifierOptions } from './classify/validate.js';
export { openClassifier, OnnxClassifier, TfjsClassifier } from './classify/predictor.js';
export type { ClassifierPredictor, OpenClassifierOptions } from './classify/predictor.js';
export { IMAGENET_NORMALISATION, UNIT_NORMALISATION, NORMALISATION_KEY, normalisationMetadata, parseNormalisation } from './classify/normalisation.js';
export type { Normalisation } from './classify/normalisation.js';
export { synthesizeClassifyDataset, renderClassifyImage } from './data/synth-classify.js';
export type { SynthClassifyOptions } from './data/synth-classify.js';
export { Adam } from './train/adam.js';
export type { AdamOptions, AdamKind } from './train/adam.js';

// Pretrained weights from any source: ultralytics .pt checkpoints, YOLOv5 ONNX exports, .kdw
export { loadDetectionModel, readSourceWeights, weightsKind } from './import/load-weights.js';
export type { LoadedDetector, LoadDetectorOptions, WeightsKind } from './import/load-weights.js';
export type { SourceWeights } from './import/source-weights.js';
export { transferWeights } from './import/transfer.js';
export type { TransferReport } from './import/transfer.js';
export { convertWeights } from './import/convert.js';
export type { ConvertResult } from './import/convert.js';
export { readTorchCheckpoint, readUltralyticsCheckpoint } from './import/torch-checkpoint.js';
export type { UltralyticsCheckpoint } from './import/torch-checkpoint.js';
export { checkAnchors, kmeanAnchors, bestPossibleRecall } from './data/autoanchor.js';
export type { CheckAnchorsResult, AnchorData } from './data/autoanchor.js';

// Predict, and the plots of a run
export { runPredict } from './predict/run-predict.js';
export { PREDICT_SCHEMA } from './predict/predict-schema.js';
export type { PredictConfig } from './predict/predict-schema.js';
export { trainPlots } from './plots/train-plots.js';
export type { ValPlotsOptions, ValPlotsResult } from './plots/val-plots.js';
