import { resolve } from 'node:path';
import {
  ConfigError, exportOnnx, encodeModel, initializerMap, KdEdgeError, measureOrtLatency, planYolo, readOnnxFile,
  type LayerPlan, type YoloDescription, type YoloPlan,
} from '@kd-edge/core';
import { TeacherError } from './teacher/teacher-error.js';
import type { FeatureDistillPair } from './distill-loss.js';
import type { TrainConfig } from '../config.js';
import { evalLoader } from '../data/eval-loader.js';
import { loadDataset } from '../data/load-dataset.js';
import { scanSplit } from '../data/scan.js';
import type { DatasetItem } from '../data/types.js';
import { loadModelWeights } from '../model/weights-io.js';
import { describeModel } from '../train/build-models.js';
import { openCheckpoint } from '../train/checkpoint.js';
import type { Hyp } from '../train/hyp.js';
import { train } from '../train/trainer.js';
import type { TrainHooks } from '../train/hooks.js';
import type { TrainResult, TrainRunOptions } from '../train/types.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { OnnxDetectionPredictor } from '../val/onnx-predictor.js';
import { validate, validateWith } from '../val/validator.js';
import { kdSettingsOf, resumedDistillConfig, trainConfigOf } from './distill-config.js';
import type { DistillConfig } from './distill-schema.js';
import { DistillSession, type DistillStepInfo } from './distill-session.js';
import { kdStopSummary } from './kd-stop.js';
import { parseKdLosses } from './losses/registry.js';
import { checkCompatibility } from './teacher/compat.js';
import { openTeacher, type OpenTeacherOptions } from './teacher/open-teacher.js';
import { TeacherCache } from './teacher/teacher-cache.js';
import { TfjsTeacher } from './teacher/tfjs-teacher.js';
import type { Teacher } from './types.js';

/** One row of the comparison: a model's accuracy, size and speed. */
export interface CompareRow {
  model: string;
  params: number;
  map50: number;
  map: number;
  /** ONNX Runtime CPU p50 at batch 1 (ms). */
  p50Ms?: number;
}

/** What `kd-trainer distill` returns. */
export interface DistillResult {
  distilled: TrainResult;
  baseline?: TrainResult;
  teacher?: { map50: number; map: number };
  rows?: CompareRow[];
  /** With `--kd-stop teacher`: the 0-based epoch from which α was 0, the student having reached the teacher. */
  kdStoppedFrom?: number;
  /** Share of the teacher–student gap in mAP50-95 the distillation recovered. */
  gapRecovered?: number;
  /** Whether the distilled run was stopped before its last epoch (`signal`, `maxSteps`). */
  interrupted: boolean;
}

/** Options of {@link runDistill}: a training run's, with steps reported with their α. */
export interface DistillRunOptions extends Omit<TrainRunOptions, 'onStep' | 'dataset' | 'resumeFrom' | 'checkpointMeta'> {
  onStep?: (info: DistillStepInfo) => void;
  /** More plug-ins of the distilled run, called after the distillation's own (`kd-trainer adapt` watches epochs and its time budget). */
  hooks?: readonly TrainHooks[];
  /** How an ONNX teacher's session is made (intra-op threads, execution providers); features are added by the losses. */
  teacherOptions?: Omit<OpenTeacherOptions, 'features'>;
  /** Measure the teacher's mAP on the val split before training (default true). */
  teacherMetrics?: boolean;
}

async function studentDescription(cfg: TrainConfig, nc: number): Promise<YoloDescription> {
  if (cfg.weights) return (await loadModelWeights(cfg.weights)).description as YoloDescription;
  return describeModel(cfg.model, nc);
}

async function teacherMetrics(teacher: Teacher, val: readonly DatasetItem[], cfg: TrainConfig, log: Logger): Promise<{ map50: number; map: number } | undefined> {
  const detector = teacher instanceof TfjsTeacher ? teacher.detector : undefined;
  if (teacher.kind !== 'onnx' && !detector) return undefined;
  const loader = evalLoader(val, { imgsz: cfg.imgsz, batchSize: cfg.batch_size * 2, workers: cfg.workers, logger: log });
  const opts = { confThres: cfg.conf_thres, iouThres: cfg.iou_thres };
  try {
    if (detector) {
      const r = await validate(detector, loader.epoch(0), opts);
      return { map50: r.map50, map: r.map };
    }
    const predictor = await OnnxDetectionPredictor.open(teacher.source, teacher.nc);
    try {
      const r = await validateWith(predictor, loader.epoch(0), opts);
      return { map50: r.map50, map: r.map };
    } finally {
      await predictor.close();
    }
  } catch (e) {
    log.warn(`teacher mAP not measured: ${(e as Error).message}`);
    return undefined;
  } finally {
    await loader.close();
  }
}

async function studentLatency(best: string, imgsz: number): Promise<{ params: number; p50Ms: number }> {
  const { description, weights } = await loadModelWeights(best);
  const bytes = encodeModel(exportOnnx(description, weights, { imgsz }));
  const params = [...weights.entries()].filter(([k]) => !k.includes('running_')).reduce((a, [, v]) => a + v.length, 0);
  return { params, p50Ms: (await measureOrtLatency(bytes, { runs: 30 })).p50 };
}

/**
 * Feature pairs for the 'feature' loss: each Detect input of the student (YOLOv5's P3–P5 neck outputs)
 * with the tensor the teacher's matching Detect convolution reads (`/model.N/m.i/Conv` in kd-edge and
 * ultralytics exports), and both channel counts.
 */
export async function detectFeaturePairs(teacherFile: string, plan: YoloPlan): Promise<FeatureDistillPair[]> {
  if (!teacherFile.toLowerCase().endsWith('.onnx')) {
    throw new TeacherError('DISTILL_FEATURES_UNSUPPORTED', `feature distillation needs an ONNX teacher (named intermediate tensors); ${teacherFile} is not one: export it with kd-trainer export`);
  }
  const model = await readOnnxFile(teacherFile);
  const g = model.graph!;
  const inits = initializerMap(g);
  const convs = new Map<number, { input: string; channels: number }>();
  let head = -1;
  for (const n of g.node) {
    const m = /^\/model\.(\d+)\/m\.(\d+)\/Conv$/.exec(n.name);
    if (n.opType !== 'Conv' || m === null) continue;
    const idx = Number(m[1]);
    if (idx > head) { head = idx; convs.clear(); }
    if (idx === head) convs.set(Number(m[2]), { input: n.input[0]!, channels: inits.get(n.input[1]!)?.dims[1] ?? 0 });
  }
  const detect = plan.layers[plan.layers.length - 1] as Extract<LayerPlan, { type: 'Detect' }>;
  if (convs.size !== detect.levels.length) {
    throw new TeacherError('DISTILL_INCOMPATIBLE', `feature distillation: the teacher ${teacherFile} has ${convs.size} Detect convolutions (/model.N/m.i/Conv), the student ${detect.levels.length} levels`);
  }
  return detect.levels.map((lv, i) => {
    const c = convs.get(i)!;
    if (!(c.channels > 0)) throw new TeacherError('DISTILL_INCOMPATIBLE', `feature distillation: cannot read the channel count of the teacher's /model.${head}/m.${i}/Conv`);
    return { name: `p${Math.round(Math.log2(lv.stride))}`, studentLayer: detect.from[i]!, studentC: lv.c1, teacherTensor: c.input, teacherC: c.channels };
  });
}

/** The `--compare` table as text lines. */
export function formatCompareTable(rows: readonly CompareRow[], gapRecovered: number | undefined): string[] {
  const head = `${'Model'.padEnd(22)}${'Params'.padStart(12)}${'mAP50'.padStart(9)}${'mAP50-95'.padStart(10)}${'ORT p50 (ms)'.padStart(14)}`;
  const lines = [head, ...rows.map((r) => `${r.model.padEnd(22)}${r.params.toLocaleString('en-US').padStart(12)}${r.map50.toFixed(3).padStart(9)}${r.map.toFixed(3).padStart(10)}${(r.p50Ms === undefined ? '—' : r.p50Ms.toFixed(2)).padStart(14)}`)];
  if (gapRecovered !== undefined) lines.push(`distillation recovered ${(gapRecovered * 100).toFixed(0)} % of the teacher–student mAP50-95 gap`);
  return lines;
}

/**
 * `kd-trainer distill`: checks the teacher against the student (classes, image size, strides, anchors,
 * layout), measures the teacher's mAP once, trains the student with the KD loss, and with `compare`
 * first trains the same student without the teacher (same seed, data and schedule) and prints teacher,
 * baseline and distilled side by side. The dataset is read once; `resume` continues a distilled run
 * with the settings in its checkpoint.
 */
export async function runDistill(cfgIn: DistillConfig, hyp: Hyp, run: DistillRunOptions = {}): Promise<DistillResult> {
  const log = run.logger ?? silentLogger;
  const resumeFrom = cfgIn.resume ? await openCheckpoint(cfgIn.resume) : undefined;
  const cfg = resumeFrom ? resumedDistillConfig(resumeFrom, cfgIn) : cfgIn;
  if (cfg.teacher_cache && cfg.augment) {
    throw new ConfigError('teacher_cache', cfg.teacher_cache, 'only with --no-augment: augmented images differ every epoch, so cached teacher outputs would belong to other pictures');
  }
  const trainCfg = trainConfigOf(cfg);
  const dataset = await loadDataset(cfg.data, log);
  const unlabeled = cfg.unlabeled
    ? { items: await scanSplit(cfg.unlabeled.split(',').map((p) => resolve(p.trim())), dataset.config.nc, log, { split: 'unlabeled', imagesOnly: true }), ratio: cfg.unlabeled_ratio }
    : undefined;
  const nc = dataset.config.nc;
  const desc = await studentDescription(trainCfg, nc);
  const plan = planYolo(desc);
  const losses = parseKdLosses(cfg.kd_loss, 'detect');
  const featurePairs = losses.includes('feature') || losses.includes('cwd') ? await detectFeaturePairs(cfg.teacher, plan) : undefined;
  const opened = await openTeacher(cfg.teacher, { ...run.teacherOptions, ...(featurePairs ? { features: featurePairs.map((p) => p.teacherTensor) } : {}) });
  const teacher = cfg.teacher_cache ? TeacherCache.wrap(opened, cfg.teacher_cache) : opened;
  try {
    const warnings = checkCompatibility(teacher, {
      task: 'detect', nc, imgsz: cfg.imgsz, strides: plan.strides, anchors: desc.anchors, na: desc.anchors[0]!.length / 2,
    });
    let boxWeight = cfg.kd_box;
    for (const w of warnings) {
      log.warn(w.message);
      if (w.disablesBoxDistillation) boxWeight = 0;
    }
    log.info(`teacher: ${teacher.source} (${teacher.kind}, ${teacher.paramCount.toLocaleString('en-US')} parameters); kd: ${losses.join('+')}, α ${cfg.kd_alpha}, T ${cfg.kd_temperature}, λ ${cfg.kd_lambda}, warm-up ${cfg.kd_warmup}, ramp ${cfg.kd_ramp}, decay ${cfg.kd_decay}, stop ${cfg.kd_stop}`);
    const tMetrics = run.teacherMetrics === false ? undefined : await teacherMetrics(opened, dataset.val, trainCfg, log);
    if (tMetrics) log.info(`teacher on val: mAP50 ${tMetrics.map50.toFixed(3)}, mAP50-95 ${tMetrics.map.toFixed(3)}`);
    const stopAtTeacher = cfg.kd_stop === 'teacher' && run.teacherMetrics !== false;
    if (stopAtTeacher && !tMetrics) log.warn("--kd-stop teacher: the teacher's val mAP was not measured, so distillation goes on to the last epoch");
    else if (stopAtTeacher && trainCfg.noval) log.warn('--kd-stop teacher: with --noval the student is validated only after its last epoch, so distillation goes on to the last epoch');

    const { onStep, hooks: extraHooks = [], teacherOptions: _t, teacherMetrics: _m, ...common } = run;
    let baseline: TrainResult | undefined;
    if (cfg.compare) {
      log.info('== baseline: the same student, seed, data and schedule, without the teacher');
      baseline = await train({ ...trainCfg, name: `${cfg.name}-baseline` }, hyp, { ...common, dataset, ...(onStep ? { onStep } : {}) });
      if (baseline.interrupted) {
        throw new KdEdgeError('TRAIN_INTERRUPTED', `interrupted in the --compare baseline (${baseline.last}); the distilled run was not started`);
      }
      log.info('== distilled');
    }
    const session = new DistillSession({
      teacher, losses, temperature: cfg.kd_temperature, alpha: cfg.kd_alpha, lambda: cfg.kd_lambda, warmup: cfg.kd_warmup, ramp: cfg.kd_ramp,
      clsMode: cfg.kd_cls_mode, boxMode: cfg.kd_box_mode, termWeights: { obj: cfg.kd_obj, cls: cfg.kd_cls, box: boxWeight },
      ...(featurePairs ? { features: { pairs: featurePairs, weight: cfg.kd_feature } } : {}),
      ...(losses.includes('cwd') ? { cwd: { weight: cfg.kd_cwd, temperature: cfg.kd_cwd_temperature } } : {}),
      ...(unlabeled ? { pseudo: { conf: cfg.pseudo_conf } } : {}),
      ...(stopAtTeacher && tMetrics ? { stopAtTeacher: true } : {}),
      ...(cfg.kd_decay === 'linear' ? { decay: 'linear' as const } : {}),
    }, { nc, strides: plan.strides, anchors: desc.anchors });
    if (tMetrics) session.teacherMetrics = tMetrics;
    if (teacher instanceof TeacherCache) log.info(`teacher cache: ${teacher.dir}`);
    const distilled = await train(cfg.compare ? { ...trainCfg, name: `${cfg.name}-kd` } : trainCfg, hyp, {
      ...common, dataset, checkpointMeta: { distill: kdSettingsOf(cfg) }, ...(resumeFrom ? { resumeFrom } : {}), ...(unlabeled ? { unlabeled } : {}),
      hooks: [session, ...extraHooks, ...(onStep ? [{ onBatchEnd: (s: DistillStepInfo) => onStep({ ...s, alpha: session.alpha }) }] : [])],
    });
    if (teacher instanceof TeacherCache) {
      const c = teacher.stats();
      log.info(`teacher cache: ${c.hits} hits, ${c.misses} misses, ${(c.bytesRead / 2 ** 20).toFixed(1)} MiB read, ${(c.bytesWritten / 2 ** 20).toFixed(1)} MiB written`);
    }
    if (session.stoppedFrom !== undefined) {
      // α is 0 while the fractional epoch is below the warm-up, so the first epoch with α > 0 is floor(warm-up).
      log.info(kdStopSummary(session.stoppedFrom, Math.floor(cfg.kd_warmup), 'mAP50-95'));
    }
    const result: DistillResult = {
      distilled, interrupted: distilled.interrupted, ...(baseline ? { baseline } : {}), ...(tMetrics ? { teacher: tMetrics } : {}),
      ...(session.stoppedFrom !== undefined ? { kdStoppedFrom: session.stoppedFrom } : {}),
    };
    if (baseline && !distilled.interrupted) {
      const rows: CompareRow[] = [];
      if (tMetrics) {
        const p50 = teacher.kind === 'onnx' ? (await measureOrtLatency(teacher.source, { runs: 30, inputDims: { images: [1, 3, cfg.imgsz, cfg.imgsz] } }).catch(() => undefined))?.p50 : undefined;
        rows.push({ model: 'teacher', params: teacher.paramCount, ...tMetrics, ...(p50 !== undefined ? { p50Ms: p50 } : {}) });
      }
      for (const [name, r] of [['student (baseline)', baseline], ['student (distilled)', distilled]] as const) {
        const l = await studentLatency(r.best, cfg.imgsz);
        rows.push({ model: name, params: l.params, map50: r.final.map50, map: r.final.map, p50Ms: l.p50Ms });
      }
      result.rows = rows;
      if (tMetrics && tMetrics.map > baseline.final.map) result.gapRecovered = (distilled.final.map - baseline.final.map) / (tMetrics.map - baseline.final.map);
      for (const line of formatCompareTable(rows, result.gapRecovered)) log.info(line);
    }
    return result;
  } finally {
    await teacher.dispose();
  }
}
