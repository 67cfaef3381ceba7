import { extname } from 'node:path';
import { KdEdgeError, readOnnxFile } from '@kd-edge/core';
import { backendForDevice } from '../backend/device.js';
import { selectBackend } from '../backend/select.js';
import { WEBGPU_CANNOT_TRAIN } from '../backend/webgpu.js';
import { checkCompatibility } from '../distill/teacher/compat.js';
import { openTeacher } from '../distill/teacher/open-teacher.js';
import { TeacherError } from '../distill/teacher/teacher-error.js';
import { kdStopSummary, STOP_EPOCHS } from '../distill/kd-stop.js';
import type { Teacher } from '../distill/types.js';
import { BackendError } from '../errors.js';
import { onnxModelInfo } from '../export/model-info.js';
import { readTensorArchiveMeta } from '../model/weights-io.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { openClassifyCheckpoint, resumedClassifyDistillConfig } from './checkpoint.js';
import type { ClassifyDistillConfig } from './classify-schema.js';
import { loadClassifyDataset, type ClassifyDataset } from './dataset.js';
import { ClassifyLoader } from './loader.js';
import { IMAGENET_NORMALISATION, type Normalisation } from './normalisation.js';
import { kdwNormalisation } from './predictor.js';
import { classifyImgSize, trainClassifier, type ClassifyRunOptions, type ClassifyTrainResult } from './train.js';
import { validateClassifier, type ClassifyValResult } from './validate.js';

/** One row of the `--compare` table. */
export interface ClassifyCompareRow {
  model: string;
  params: number;
  top1: number;
  top5: number;
}

/** What `kd-trainer classify distill` returns. */
export interface ClassifyDistillResult {
  distilled: ClassifyTrainResult;
  /** The student trained without the teacher (with `compare`). */
  baseline?: ClassifyTrainResult;
  teacher: ClassifyValResult & { params: number };
  /** Share of the teacher–baseline top-1 gap the distilled student closed (with `compare`, when the teacher is ahead). */
  gapRecovered?: number;
  /** With `--kd-stop teacher`: the 0-based epoch from which α was 0, the student having reached the teacher's val top-1. */
  kdStoppedFrom?: number;
  interrupted: boolean;
}

/** Options of {@link runClassifyDistill}: those of a training run, less what the command sets itself. */
export type ClassifyDistillRunOptions = Omit<ClassifyRunOptions, 'kd' | 'dataset' | 'backendReady' | 'resumeFrom'>;

const isDefaultNames = (names: readonly string[]): boolean => names.every((n, i) => n === `class${i}`);

/** Class names and input normalisation a teacher file records (what its checks against the student need). */
async function teacherFacts(file: string): Promise<{ names?: string[]; normalisation: Normalisation }> {
  if (extname(file).toLowerCase() === '.onnx') {
    const info = onnxModelInfo(await readOnnxFile(file), file);
    return { names: info.names, normalisation: info.normalisation };
  }
  const header = await readTensorArchiveMeta(file);
  const meta = (header.meta ?? {}) as Record<string, unknown>;
  const desc = (header.description ?? {}) as { names?: unknown };
  const names = Array.isArray(desc.names) ? desc.names as string[] : Array.isArray(meta.names) ? meta.names as string[] : undefined;
  return { ...(names ? { names } : {}), normalisation: kdwNormalisation(meta) };
}

const sameNormalisation = (a: Normalisation, b: Normalisation): boolean =>
  Math.abs(a.scale - b.scale) < 1e-9 && [0, 1, 2].every((c) => Math.abs(a.mean[c]! - b.mean[c]!) < 1e-6 && Math.abs(a.std[c]! - b.std[c]!) < 1e-6);

/**
 * Checks a teacher against the student and the dataset: task (a detector is refused), class count,
 * a static input size, class names in the same order, and the input normalisation. Throws TeacherError
 * 'DISTILL_INCOMPATIBLE' naming the teacher file and both sides' values.
 */
export async function checkClassifyTeacher(teacher: Teacher, data: ClassifyDataset, imgsz: number): Promise<void> {
  checkCompatibility(teacher, { task: 'classify', nc: data.names.length, imgsz });
  const facts = await teacherFacts(teacher.source);
  const problems: string[] = [];
  if (facts.names !== undefined && !isDefaultNames(facts.names) && facts.names.join('\u0000') !== data.names.join('\u0000')) {
    problems.push(`class names: teacher [${facts.names.join(', ')}], dataset [${data.names.join(', ')}] (the teacher's logits would be read as other classes)`);
  }
  if (!sameNormalisation(facts.normalisation, IMAGENET_NORMALISATION)) {
    problems.push(`input normalisation: teacher ${JSON.stringify(facts.normalisation)}, student ${JSON.stringify(IMAGENET_NORMALISATION)}`);
  }
  if (problems.length > 0) throw new TeacherError('DISTILL_INCOMPATIBLE', `teacher ${teacher.source} and the student do not match:\n  - ${problems.join('\n  - ')}`);
}

/** The `--compare` table as text lines, with the share of the top-1 gap recovered. */
export function formatClassifyCompare(rows: readonly ClassifyCompareRow[], gapRecovered: number | undefined): string[] {
  const lines = [
    `${'Model'.padEnd(22)}${'Params'.padStart(12)}${'top1_acc'.padStart(10)}${'top5_acc'.padStart(10)}`,
    ...rows.map((r) => `${r.model.padEnd(22)}${r.params.toLocaleString('en-US').padStart(12)}${r.top1.toFixed(3).padStart(10)}${r.top5.toFixed(3).padStart(10)}`),
  ];
  lines.push(gapRecovered === undefined
    ? 'no teacher–student top-1 gap to recover: the baseline is as accurate as the teacher'
    : `distillation recovered ${(gapRecovered * 100).toFixed(0)} % of the teacher–student top-1 gap`);
  return lines;
}

/**
 * `kd-trainer classify distill`: opens the teacher (ONNX or .kdw), checks it against the student,
 * measures its accuracy on the val split, and trains the student with Hinton's loss α·KD + (1−α)·CE
 * (the teacher sees the same augmented pixels). With `compare` the same student is first trained without
 * the teacher (same seed, data order and schedule) into `<name>-baseline`, the distilled one into
 * `<name>-kd`, and the three accuracies are printed with the share of the gap recovered. With `kd_stop`
 * 'teacher' (the default) α is 0 for the rest of the run once the student's val top-1 has reached the
 * teacher's on STOP_EPOCHS epochs in a row; the decision is kept in the checkpoint. `resume` continues
 * an interrupted distilled run with the options, teacher and KD settings in its checkpoint.
 * @example
 * await runClassifyDistill(resolveOptions(CLASSIFY_DISTILL_SCHEMA, [{ data: 'shapes-cls', teacher: 's.onnx', compare: true }]).config);
 */
export async function runClassifyDistill(cfgIn: ClassifyDistillConfig, run: ClassifyDistillRunOptions = {}): Promise<ClassifyDistillResult> {
  const log: Logger = run.logger ?? silentLogger;
  const resumeFrom = cfgIn.resume ? await openClassifyCheckpoint(cfgIn.resume, 'distill') : undefined;
  const cfg = resumeFrom ? resumedClassifyDistillConfig(resumeFrom, cfgIn) : cfgIn;
  if (resumeFrom && cfgIn.compare) log.info('--compare is not resumed: the distilled run goes on (its baseline had finished before it started)');
  const backend = await selectBackend(backendForDevice(cfg.device, cfg.backend), log);
  if (backend.name === 'webgpu') throw new BackendError(WEBGPU_CANNOT_TRAIN);
  const data = await loadClassifyDataset(cfg.data, log);
  const imgsz = classifyImgSize(cfg.imgsz, 32);
  const teacher = await openTeacher(cfg.teacher, cfg.threads > 0 ? { sessionOptions: { intraOpNumThreads: cfg.threads, interOpNumThreads: 1 } } : {});
  try {
    await checkClassifyTeacher(teacher, data, imgsz);
    const valLoader = new ClassifyLoader(data.val, { imgsz, batchSize: cfg.batch_size * 2, normalisation: IMAGENET_NORMALISATION, logger: log });
    const tVal = await validateClassifier(async (b) => (await teacher.predict(b.images, b.n, b.size, b.size)).logits!, valLoader.epoch(0), data.names.length, { smoothing: cfg.label_smoothing });
    const t = { ...tVal, params: teacher.paramCount };
    log.info(`teacher ${teacher.source}: top1_acc ${t.top1.toFixed(3)}, top5_acc ${t.top5.toFixed(3)} on ${t.images} ${data.valSplit} images (${t.speed.inference.toFixed(1)} ms/image)`);
    const common = { ...run, dataset: data, backendReady: true };
    let baseline: ClassifyTrainResult | undefined;
    if (cfg.compare) {
      log.info('== baseline: the same student, seed, data order and schedule, without the teacher');
      baseline = await trainClassifier({ ...cfg, name: `${cfg.name}-baseline` }, common);
      if (baseline.interrupted) {
        throw new KdEdgeError('TRAIN_INTERRUPTED', `interrupted in the --compare baseline (${baseline.last}); the distilled run was not started`);
      }
      log.info('== distilled: the same student with the teacher');
    }
    const kd = {
      teacher, alpha: cfg.kd_alpha, temperature: cfg.kd_temperature, warmup: cfg.kd_warmup, teacherTop1: t.top1,
      ...(cfg.kd_stop === 'teacher' ? { stopAtTeacher: true } : {}),
    };
    log.info(`distillation: loss = ${cfg.kd_alpha}·KD(T=${cfg.kd_temperature}) + ${(1 - cfg.kd_alpha).toFixed(2)}·CE${cfg.kd_warmup > 0 ? ` after ${cfg.kd_warmup} epoch(s) of CE alone` : ''}`
      + (cfg.kd_stop === 'teacher' ? `, until the student's val top-1 reaches the teacher's on ${STOP_EPOCHS} epochs in a row (--kd-stop teacher)` : ', to the last epoch (--kd-stop never)'));
    const distilled = await trainClassifier(cfg.compare ? { ...cfg, name: `${cfg.name}-kd` } : cfg, { ...common, kd, ...(resumeFrom ? { resumeFrom } : {}) });
    const stoppedFrom = distilled.kdStoppedFrom;
    if (stoppedFrom !== undefined) log.info(kdStopSummary(stoppedFrom, Math.ceil(cfg.kd_warmup), 'top-1'));
    const result: ClassifyDistillResult = {
      distilled, teacher: t, interrupted: distilled.interrupted, ...(baseline ? { baseline } : {}), ...(stoppedFrom !== undefined ? { kdStoppedFrom: stoppedFrom } : {}),
    };
    if (baseline && !distilled.interrupted) {
      if (t.top1 > baseline.final.top1) result.gapRecovered = (distilled.final.top1 - baseline.final.top1) / (t.top1 - baseline.final.top1);
      const rows: ClassifyCompareRow[] = [
        { model: 'teacher', params: t.params, top1: t.top1, top5: t.top5 },
        { model: 'student (baseline)', params: baseline.paramCount, top1: baseline.final.top1, top5: baseline.final.top5 },
        { model: 'student (distilled)', params: distilled.paramCount, top1: distilled.final.top1, top5: distilled.final.top5 },
      ];
      log.info('');
      for (const line of formatClassifyCompare(rows, result.gapRecovered)) log.info(line);
    }
    return result;
  } finally {
    await teacher.dispose();
  }
}
