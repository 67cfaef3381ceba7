import { existsSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { planYolo, type YoloDescription } from '@kd-edge/core';
import { stringify } from 'yaml';
import { backendForDevice } from '../backend/device.js';
import { readYamlMapping, resolveHyp } from '../config.js';
import { DatasetError, WeightsError } from '../errors.js';
import { checkCompatibility } from '../distill/teacher/compat.js';
import { openTeacher } from '../distill/teacher/open-teacher.js';
import { requireTeacherFile, sha256File } from '../distill/teacher/teacher-file.js';
import type { ProgressStream } from '../log/progress.js';
import { checkImgSize } from '../model/img-size.js';
import { loadModelWeights } from '../model/weights-io.js';
import type { Hyp } from '../train/hyp.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { decideAcceptance } from './acceptance.js';
import { AdaptError } from './adapt-error.js';
import type { AdaptCancelled, AdaptProgress, AdaptReport, AdaptResult, AdaptStage } from './adapt-report.js';
import { ADAPT_HYP, type AdaptConfig } from './adapt-schema.js';
import { evaluateJob } from './evaluate.js';
import { exportAdapted } from './export-adapted.js';
import { fineTune } from './fine-tune.js';
import { acquireJobLock, type JobLockOwner } from './job-lock.js';
import { jobPaths, readJobState, readJson, writeJobState, writeJson, type JobPaths, type JobState } from './job-files.js';
import { frameSources, labelFrames, type LabelInputs, type LabelSummary } from './label-frames.js';
import { replaySources } from './replay-images.js';

/** Everything a job needs besides its options. */
export interface AdaptRunOptions {
  logger?: Logger;
  /** Where the training's progress bar goes (process.stdout by default). */
  progress?: ProgressStream;
  /** Stops the job: labelling between batches, training after the current step (last.kdw saved), evaluation between models. */
  signal?: AbortSignal;
  /** Each stage's progress: frames labelled, epochs trained, models evaluated, export. */
  onProgress?: (p: AdaptProgress) => void;
  /** Hyperparameters over the recipe's (the options lr0, lrf and warmup_epochs win over these). */
  hyp?: Partial<Hyp>;
  /** How long to wait for another live process holding the job folder's lock before ADAPT_JOB_LOCKED (default 0). */
  lockWaitMs?: number;
  /** Called when the wait for that process begins. */
  onLockWait?: (owner: JobLockOwner) => void;
}

/** The inputs that make a job what it is: a call on the same folder must bring the same. */
const SAME_JOB: readonly (keyof LabelInputs)[] = ['teacherSha256', 'weightsSha256', 'imgsz', 'pseudoConf', 'holdout', 'seed', 'replay', 'replayMax'];

/** An input as compared and named: a job labelled before replay existed had none. */
function inputValue(i: LabelInputs, k: keyof LabelInputs): string {
  if (k === 'replay') return (i.replay ?? []).join(',') || 'none';
  // A cap on no replay images changes nothing.
  if (k === 'replayMax') return (i.replay ?? []).length > 0 ? String(i.replayMax ?? 0) : '—';
  return String(i[k]);
}

function checkSameJob(paths: JobPaths, was: LabelInputs, now: LabelInputs, log: Logger): void {
  const differ = SAME_JOB.filter((k) => inputValue(was, k) !== inputValue(now, k));
  if (differ.length > 0) {
    const what = differ.map((k) => `${k} ${inputValue(now, k)} (the job's: ${inputValue(was, k)})`).join(', ');
    throw new AdaptError('ADAPT_JOB_MISMATCH', `${paths.dir} is a job started with other inputs: ${what}; use a new --out folder, or delete this one to start again`);
  }
  if (was.frames.join(',') !== now.frames.join(',')) log.info(`the job's frames were labelled from ${was.frames.join(', ')}; --frames ${now.frames.join(', ')} is not read again`);
}

function studentNames(desc: YoloDescription, meta: Record<string, unknown>): string[] {
  const ok = (n: unknown): n is string[] => Array.isArray(n) && n.length === desc.nc && n.every((x) => typeof x === 'string');
  if (ok(desc.names)) return [...desc.names];
  if (ok(meta.names)) return [...meta.names];
  return Array.from({ length: desc.nc }, (_, i) => `class${i}`);
}

/** `--val` as a data YAML: a YAML as given, or one written beside the job for a folder of images/ and labels/. */
async function valDataYaml(spec: string, paths: JobPaths, names: string[]): Promise<string> {
  const p = resolve(spec);
  if (!existsSync(p)) throw new DatasetError(`--val ${p} does not exist`);
  if (!statSync(p).isDirectory()) return p;
  const images = existsSync(join(p, 'images')) ? join(p, 'images') : p;
  await writeFile(paths.valYaml, `# kd-trainer adapt: --val ${p}\n${stringify({ path: p, train: images, val: images, nc: names.length, names })}`);
  return paths.valYaml;
}

/** The recipe's hyperparameters: ADAPT_HYP, the --hyp file, the caller's, then the options lr0, lrf, warmup_epochs. */
async function jobHyp(cfg: AdaptConfig, run: AdaptRunOptions, log: Logger): Promise<Hyp> {
  const file = cfg.hyp ? await readYamlMapping(cfg.hyp, 'hyp') : {};
  const merged = resolveHyp(ADAPT_HYP as unknown as Record<string, unknown>, file, (run.hyp ?? {}) as Record<string, unknown>);
  for (const k of ['lr0', 'lrf', 'warmup_epochs'] as const) {
    if (merged[k] !== ADAPT_HYP[k] && merged[k] !== cfg[k]) log.warn(`hyp ${k} ${merged[k]} is an option of adapt: --${k.replace('_', '-')} ${cfg[k]} is used`);
  }
  return { ...merged, lr0: cfg.lr0, lrf: cfg.lrf, warmup_epochs: cfg.warmup_epochs };
}

/**
 * `kd-trainer adapt`: fine-tunes a serving detector to the frames its own camera captured, with no labels
 * (issue 16). Four stages, each skipped when an earlier call on the same job folder finished it:
 * 1. label ({@link labelFrames}): the teacher labels every frame; a deterministic split into adaptation and
 *    hold-out frames; the replay images (`replay`), with their own label files when they have them (else the
 *    teacher's), join the adaptation frames only; a YOLO
 *    dataset in `data/`;
 * 2. train ({@link fineTune}): distillation from the serving weights with the fine-tuning recipe into
 *    `run/`, resumed from its last.kdw, within the time budget (a job the budget stopped trains on when
 *    called with a larger one);
 * 3. evaluate ({@link evaluateJob}): serving and adapted student on the hold-out and on `--val`;
 * 4. decide ({@link decideAcceptance}) and, when accepted, export ({@link exportAdapted}) into `export/`.
 * adapt.json is written last. The student's and the teacher's classes must match (DISTILL_INCOMPATIBLE).
 * @returns the report, or {status: 'cancelled'} when `run.signal` stopped the job (call again to go on)
 * @example
 * const { config } = resolveOptions(ADAPT_SCHEMA, [{ frames: '/var/lib/kd-agent/capture', teacher: 'teacher.onnx', weights: 'model.kdw', out: 'job' }]);
 * const r = await runAdapt(config, { onProgress: (p) => console.log(p.stage), signal: AbortSignal.timeout(3_600_000) });
 */
export async function runAdapt(cfg: AdaptConfig, run: AdaptRunOptions = {}): Promise<AdaptResult> {
  const log = run.logger ?? silentLogger;
  const paths = jobPaths(cfg.out);
  const cancelled = (stage: AdaptStage): AdaptCancelled => {
    log.info(`stopped in the ${stage} stage; the same command on ${paths.dir} goes on from there`);
    return { status: 'cancelled', stage, job: paths.dir };
  };

  // The student: a kd-trainer detector, whose classes name the dataset's.
  if (extname(cfg.weights).toLowerCase() !== '.kdw') {
    throw new AdaptError('ADAPT_WEIGHTS_FORMAT', `--weights ${cfg.weights}: the serving student must be kd-trainer weights (.kdw); convert other weights with kd-trainer convert`);
  }
  if (!existsSync(cfg.weights)) throw new WeightsError(`--weights ${cfg.weights}: no such file`);
  const student = await loadModelWeights(cfg.weights);
  if (student.description.type === 'classifier') throw new AdaptError('ADAPT_WEIGHTS_FORMAT', `--weights ${cfg.weights} is a classifier; adapt fine-tunes detectors`);
  const desc = student.description as YoloDescription;
  const plan = planYolo(desc);
  const names = studentNames(desc, student.meta);
  const imgsz = checkImgSize(cfg.imgsz, Math.max(...plan.strides), log);
  // Absolute paths: a resumed run reads them from its checkpoint, maybe from another working directory.
  const job: AdaptConfig = { ...cfg, imgsz, teacher: resolve(cfg.teacher), weights: resolve(cfg.weights) };
  await requireTeacherFile(cfg.teacher);
  const hyp = await jobHyp(job, run, log);
  await mkdir(paths.dir, { recursive: true });
  // One process per job folder: a second trainer on it (an orphan of a killed agent, a second start) would interleave
  // its checkpoints and labels with this one's.
  const lock = await acquireJobLock(paths.dir, { waitMs: run.lockWaitMs ?? 0, ...(run.onLockWait ? { onWait: run.onLockWait } : {}) });
  try {
    return await runLocked(cfg, run, { log, paths, desc, plan, names, imgsz, job, hyp, cancelled });
  } finally {
    await lock.release();
  }
}

/** What {@link runAdapt} resolved before it took the job folder's lock. */
interface Resolved {
  log: Logger;
  paths: JobPaths;
  desc: YoloDescription;
  plan: ReturnType<typeof planYolo>;
  names: string[];
  imgsz: number;
  job: AdaptConfig;
  hyp: Hyp;
  cancelled: (stage: AdaptStage) => AdaptCancelled;
}

/** The job's stages, with the folder's lock held. */
async function runLocked(cfg: AdaptConfig, run: AdaptRunOptions, r: Resolved): Promise<AdaptResult> {
  const { log, paths, desc, plan, names, imgsz, job, hyp, cancelled } = r;

  const specs = cfg.frames.split(',').map((s) => s.trim()).filter(Boolean).map((s) => resolve(s));
  const inputs: LabelInputs = {
    frames: specs, teacher: resolve(cfg.teacher), teacherSha256: await sha256File(cfg.teacher), weights: resolve(cfg.weights),
    weightsSha256: await sha256File(cfg.weights), imgsz, pseudoConf: cfg.pseudo_conf, holdout: cfg.holdout, seed: cfg.seed,
    // Replay images are part of what the job is (by path and cap): a call on the job must name the same.
    replay: cfg.replay.split(',').map((s) => s.trim()).filter(Boolean).map((s) => resolve(s)), replayMax: cfg.replay_max,
  };
  let labels = await readJson<LabelSummary>(paths.labels);
  if (labels?.version !== 1) labels = undefined;
  if (labels) checkSameJob(paths, labels.inputs, inputs, log);
  let state: JobState = await readJobState(paths);
  const save = (): Promise<void> => writeJobState(paths, state);

  // 1. Label.
  if (!labels) {
    inputs.frames = frameSources(cfg.frames);
    inputs.replay = replaySources(cfg.replay);
    // New data: whatever an earlier start left after it belongs to other frames.
    for (const p of [paths.run, paths.export, paths.report, paths.state]) await rm(p, { recursive: true, force: true });
    state = { version: 1, trainSeconds: 0, resumes: 0 };
    const teacher = await openTeacher(cfg.teacher, cfg.threads > 0 ? { sessionOptions: { intraOpNumThreads: cfg.threads } } : {});
    try {
      const warnings = checkCompatibility(teacher, {
        task: 'detect', nc: desc.nc, imgsz, strides: plan.strides, anchors: desc.anchors, na: desc.anchors[0]!.length / 2, names,
      });
      for (const w of warnings) log.warn(w.message);
      labels = await labelFrames({
        paths, inputs, teacher, names, minFrames: cfg.min_frames, batchSize: cfg.batch_size, workers: cfg.workers, logger: log,
        ...(run.signal ? { signal: run.signal } : {}), ...(run.onProgress ? { onProgress: run.onProgress } : {}),
      });
    } finally {
      await teacher.dispose();
    }
    if (!labels) return cancelled('label');
    await save();
  } else {
    log.info(`frames: labelled already (${labels.frames.used} frames, ${labels.boxes.total} boxes): ${paths.data}`);
  }

  // 2. Train. A job the budget stopped goes on when it is given more time.
  if (state.training?.stopReason === 'budget' && (cfg.time_budget === 0 || cfg.time_budget > state.trainSeconds)) {
    log.info(`the job stopped at its time budget after ${state.trainSeconds.toFixed(0)} s; --time-budget ${cfg.time_budget || 'none'} lets it train on`);
    delete state.training;
  }
  if (!state.training) {
    if (run.signal?.aborted) return cancelled('train');
    const t = await fineTune({
      cfg: job, hyp, paths, state, logger: log,
      ...(run.signal ? { signal: run.signal } : {}), ...(run.onProgress ? { onProgress: run.onProgress } : {}), ...(run.progress ? { progress: run.progress } : {}),
    });
    if (!t) return cancelled('train');
    state.training = t;
    delete state.evaluation;
    delete state.export;
    await save();
  }
  const training = state.training;
  log.info(`training: ${training.epochsRun}/${training.epochs} epochs (${training.stopReason}) in ${training.seconds.toFixed(0)} s`);

  // 3. Evaluate.
  const val = cfg.val ? await valDataYaml(cfg.val, paths, names) : undefined;
  if (!state.evaluation || state.evaluation.val?.data !== val || state.evaluation.imgsz !== imgsz) {
    if (run.signal?.aborted) return cancelled('evaluate');
    const fig = await evaluateJob({
      dataYaml: paths.dataYaml, serving: inputs.weights, teacher: inputs.teacher, names, imgsz, batchSize: cfg.batch_size * 2, workers: cfg.workers,
      backend: backendForDevice(cfg.device, cfg.backend), logger: log,
      ...(training.adapted ? { adapted: training.adapted } : {}), ...(val ? { val } : {}),
      ...(run.signal ? { signal: run.signal } : {}), ...(run.onProgress ? { onProgress: run.onProgress } : {}),
    });
    if (!fig) return cancelled('evaluate');
    state.evaluation = fig;
    delete state.export;
    await save();
  }

  // 4. Decide, and export what is accepted.
  const rule = { minGain: cfg.min_gain, maxLoss: cfg.max_loss };
  const decision = decideAcceptance(state.evaluation, rule);
  let exportSkipped: string | undefined;
  if (decision.accepted && cfg.export && training.adapted) {
    if (!state.export || state.export.formats !== cfg.formats || !existsSync(state.export.report)) {
      if (run.signal?.aborted) return cancelled('export');
      run.onProgress?.({ stage: 'export', status: 'start' });
      state.export = await exportAdapted({
        weights: training.adapted, out: paths.export, imgsz, formats: cfg.formats, data: val ?? paths.dataYaml, calibData: paths.dataYaml,
        calibImages: cfg.calib_images, workers: cfg.workers, logger: log,
      });
      await save();
      run.onProgress?.({ stage: 'export', status: 'done', files: state.export.rows.map((r) => r.file) });
    }
  } else {
    // A job decided again under a stricter rule must not leave the export of an earlier acceptance behind.
    await rm(paths.export, { recursive: true, force: true });
    if (state.export) {
      delete state.export;
      await save();
    }
    exportSkipped = decision.accepted ? 'not asked (--no-export)' : 'rejected';
  }

  const { recipe, ...trained } = training;
  const report: AdaptReport = {
    version: 1,
    status: decision.accepted ? 'accepted' : 'rejected',
    accepted: decision.accepted,
    reasons: decision.reasons,
    checks: decision.checks,
    acceptance: rule,
    frames: { ...labels.frames, sources: labels.inputs.frames },
    split: { ...labels.split, share: labels.inputs.holdout, seed: labels.inputs.seed },
    replay: labels.replay ?? { sources: [], max: 0, found: 0, skipped: 0, skippedFiles: [], duplicates: 0, used: 0, boxes: 0, backgrounds: 0 },
    boxes: labels.boxes,
    pseudoConf: labels.inputs.pseudoConf,
    recipe,
    training: { ...trained, resumes: state.resumes },
    evaluation: state.evaluation,
    ...(state.export ? { export: state.export } : {}),
    ...(exportSkipped ? { exportSkipped } : {}),
    paths: {
      job: paths.dir, data: paths.data, run: paths.run, serving: inputs.weights, teacher: inputs.teacher, report: paths.report,
      ...(training.adapted ? { adapted: training.adapted } : {}), ...(val ? { val } : {}), ...(state.export ? { export: state.export.dir } : {}),
    },
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    finishedAt: new Date().toISOString(),
  };
  await writeJson(paths.report, report);
  log.debug(`${report.status}: ${report.reasons.join('; ')}`);
  return report;
}
