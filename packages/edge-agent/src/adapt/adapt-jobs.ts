import { EventEmitter } from 'node:events';
import { copyFile, cp, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  adaptedVersion, defaultModel, extractTar, FINAL_ADAPT_STATES, makeAdapt, manifestRole, packDirectory, parseAdaptedVersion, parseManifest, procStat,
  processAlive, readJobLock, silentLogger, writeFileDurable, type AdaptCommand, type AdaptMessage, type AdaptState, type BenchMessage, type Logger,
  type Manifest, type Precision,
} from '@kd-edge/core';
import type { AgentServices } from '../commands/agent-services.js';
import { AgentError, errorCode } from '../errors.js';
import { benchmarkModel } from '../model/model-benchmark.js';
import { onDeviceAccuracy } from '../model/on-device-accuracy.js';
import type { StoredVersion } from '../store/model-store.js';
import { batchForBudget } from './adapt-batch.js';
import { ADAPT_EXIT, adaptChildArgs, startAdaptChild, type AdaptChild, type AdaptChildExit, type AdaptChildRecipe } from './adapt-child.js';
import { checkAdaptDisk, estimateJobBytes, type StatfsFn } from './adapt-disk.js';
import { AdaptJobError } from './adapt-error.js';
import { uploadPackage } from './adapt-upload.js';
import { buildAdaptedPackage } from './adapt-package.js';
import { resolveAdaptRecipe, type AdaptRecipeKey, type AdaptRecipeSource } from './adapt-recipe.js';
import type { DeviceKey } from './device-key.js';
import { stopProcess } from './job-lock.js';
import { verifyOwnPackage } from './own-package.js';
import { RssMonitor } from './rss-monitor.js';
import { locateTrainer } from './trainer-command.js';

/** The agent's record of one job, `<dataDir>/adapt/<jobId>/agent-job.json`, written atomically at every change. */
export interface AdaptJobRecord {
  v: 1;
  jobId: string;
  commandId: string | null;
  state: AdaptState;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  /** When each state was entered. */
  stages: Partial<Record<AdaptState, string>>;
  /** Activate an accepted model (else keep it for review). */
  activate: boolean;
  /** The serving model the job adapts (its store key), and the precision it serves. */
  base: { name: string; version: string; key: string; sha256: string; precision: Precision };
  teacher: { name: string; version: string; key: string };
  /**
   * The recipe as resolved (command, then the serving package's `adapt.recipe`, then the configuration, then
   * kd-trainer's defaults, which are not written) and what the agent chose: batch, threads, nice.
   */
  recipe: AdaptChildRecipe & { memoryBudgetMb?: number; batch: number; threads: number; nice: number };
  /** Where each resolved recipe value came from (`command`, `package`, `config`, or `model`: the input size). */
  recipeFrom?: Partial<Record<AdaptRecipeKey, AdaptRecipeSource>>;
  /** kd-trainer adapt's arguments (after the executable); a resume runs the same. */
  args: string[];
  paths: { dir: string; jobDir: string; frames: string; weights: string; teacher: string; val?: string };
  /** An adapt-cancel arrived: the job ends cancelled, also after a restart. */
  cancelRequested?: boolean;
  /** The last kd-trainer child's pid (a restart after a crash stops it if it still runs). */
  childPid?: number;
  /** Its start time (field 22 of /proc/<pid>/stat): a pid reused by another process since is left alone. */
  childStartTime?: string;
  /** Counter of the adapted version and the package's createdAt: fixed before anything is written. */
  n?: number;
  packageCreatedAt?: string;
  /** The installed adapted package. */
  package?: { key: string; sha256: string };
  /** The fields of the adapt message as far as known. */
  msg: Partial<Pick<AdaptMessage, 'version' | 'progress' | 'frames' | 'epoch' | 'epochs' | 'losses' | 'holdout' | 'val' | 'accepted' | 'reasons' | 'activated' | 'code' | 'message'>>;
  /** Serving fps just before the child started and its mean while the child ran. */
  serving?: { fpsBefore?: number; fpsDuring?: number };
  /** Highest resident memory of the job's processes (MiB). */
  peakRssMb?: number;
}

/** What the job manager needs of the agent: its services, its key, and the few things only the agent knows. */
export interface AdaptHost extends AgentServices {
  readonly deviceKey: Pick<DeviceKey, 'publicKey' | 'privateKey'>;
  /** Publishes a job's whole state, retained, QoS 1, on `devices/{id}/adapt`. */
  publishAdapt(msg: AdaptMessage): Promise<void>;
  /** The capture folder and the frames in it now, or undefined when capture is off. */
  captureInfo(): { dir: string; frames: number } | undefined;
  /** The inference service's counters, or undefined when nothing serves. */
  servingStats(): { fps: number; frames: number } | undefined;
  /** Runs `fn` on the agent's command queue, so it never interleaves with a deploy or rollback. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/** Options of {@link AdaptJobs.open}. */
export interface AdaptJobsOptions {
  /** The jobs' folder (`<dataDir>/adapt`). */
  root: string;
  logger?: Logger;
  /** After SIGINT, how long a child may take to stop before SIGKILL (default 30 s). */
  killGraceMs?: number;
  /** Milliseconds between memory samples (default 1000). */
  rssIntervalMs?: number;
  /** `fs.statfs` for the admission's disk check (tests give another). */
  statfs?: StatfsFn;
}

/** The jobs' folder's record of the highest adapted-version counter issued per model name and base version. */
const ISSUED_FILE = '.adapted-versions.json';

/** Events of {@link AdaptJobs}. */
export interface AdaptJobsEvents {
  /** Every adapt message published, in order. */
  adapt: [msg: AdaptMessage];
  error: [error: Error];
}

/** What starts a job: an `adapt` command, or the schedule (`id` null: no command). */
export type AdaptRequest = Pick<AdaptCommand, 'jobId' | 'base' | 'teacher' | 'recipe' | 'activate'> & { id: string | null };

/** The answer to an `adapt` or `adapt-cancel` command: the job and its state now. */
export interface AdaptAnswer {
  jobId: string;
  state: AdaptState;
  /** The job was known already: nothing new was started. */
  known?: boolean;
}

const JOB_FILE = 'agent-job.json';
const TRAINER_STATES: readonly AdaptState[] = ['queued', 'labelling', 'training', 'evaluating', 'exporting'];
const STAGE_STATES: Record<string, AdaptState> = { label: 'labelling', train: 'training', evaluate: 'evaluating', export: 'exporting' };
const isFinal = (s: AdaptState): boolean => FINAL_ADAPT_STATES.includes(s);

/** Why a job's run stopped without a final state: the agent is stopping, and a restart resumes it. */
class Unfinished extends Error {}

interface Running {
  jobId: string;
  promise: Promise<void>;
  child?: AdaptChild;
}

/**
 * kd-agent's on-device adaptation jobs (issue 16), one at a time: admission of `adapt` commands, the kd-trainer
 * child, packaging with the device key, the gates and the activation, cancel, resume after a restart, and the
 * retained `devices/{id}/adapt` message at every step. A job lives in `<root>/<jobId>/`: `agent-job.json` (this
 * manager's record) and `job/` (kd-trainer's JOBDIR). Every stage is idempotent, so a crash at any point resumes or
 * fails cleanly, and the old model serves until an activation of a package verified with the device's own key.
 * @example
 * const jobs = await AdaptJobs.open(agent, { root: join(dataDir, 'adapt') });
 * jobs.resume();
 * const { jobId, state } = await jobs.admit(cmd); // 'queued': the job runs on
 */
export class AdaptJobs extends EventEmitter<AdaptJobsEvents> {
  readonly root: string;
  readonly #host: AdaptHost;
  readonly #log: Logger;
  readonly #killGraceMs: number;
  readonly #rssIntervalMs: number;
  readonly #statfs: StatfsFn | undefined;
  readonly #jobs = new Map<string, AdaptJobRecord>();
  #running: Running | undefined;
  /** Jobs waiting to run (resumed at start, one after the other). */
  #chain: Promise<void> = Promise.resolve();
  #publishing: Promise<void> = Promise.resolve();
  #saving: Promise<void> = Promise.resolve();
  #stopping = false;
  /** The last refusal of a scheduled job, logged once. */
  #scheduleRefusal: string | undefined;

  private constructor(host: AdaptHost, options: AdaptJobsOptions) {
    super();
    this.#host = host;
    this.root = options.root;
    this.#log = options.logger ?? silentLogger;
    this.#killGraceMs = options.killGraceMs ?? 30_000;
    this.#rssIntervalMs = options.rssIntervalMs ?? 1000;
    this.#statfs = options.statfs;
  }

  /** Opens the jobs' folder and reads every job's record; one that does not parse is left alone and logged. */
  static async open(host: AdaptHost, options: AdaptJobsOptions): Promise<AdaptJobs> {
    const jobs = new AdaptJobs(host, options);
    await mkdir(jobs.root, { recursive: true });
    for (const name of await readdir(jobs.root)) {
      const file = join(jobs.root, name, JOB_FILE);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch {
        continue;
      }
      try {
        const rec = JSON.parse(text) as AdaptJobRecord;
        if (rec.v !== 1 || typeof rec.jobId !== 'string' || typeof rec.state !== 'string') throw new Error('not a job record');
        jobs.#jobs.set(rec.jobId, rec);
      } catch (err) {
        jobs.#log.error(`adapt: ${file} does not parse (${(err as Error).message}); left alone`);
      }
    }
    return jobs;
  }

  /** A copy of a job's record, or undefined. */
  get(jobId: string): AdaptJobRecord | undefined {
    const rec = this.#jobs.get(jobId);
    return rec === undefined ? undefined : structuredClone(rec);
  }

  /** Every job's record, oldest first. */
  list(): AdaptJobRecord[] {
    return [...this.#jobs.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt)).map((r) => structuredClone(r));
  }

  /** The job running now, if any. */
  get runningJob(): string | undefined {
    return this.#running?.jobId;
  }

  /**
   * Resumes every job whose record is not final (after a restart), one after the other, oldest first. First it
   * publishes the latest job's state again: a process killed between writing a state and publishing it would
   * otherwise leave the retained message one state behind the record (a final state never sent, say).
   */
  resume(): void {
    const latest = [...this.#jobs.values()].sort((a, b) => a.updatedAt.localeCompare(b.updatedAt)).at(-1);
    if (latest !== undefined) this.#publish(latest);
    for (const rec of this.list()) {
      if (isFinal(rec.state)) continue;
      this.#log.info(`adapt: resuming job ${rec.jobId} (${rec.state}) cut short by a restart`);
      this.#start(rec.jobId);
    }
  }

  /**
   * Admits an `adapt` command: checks it (each refusal an AdaptJobError or AgentError with its code), writes the
   * job's record (`queued`), publishes it and starts the job, which runs on after this returns. A job id already
   * known is not started again: its state now is the answer.
   */
  async admit(cmd: AdaptRequest): Promise<AdaptAnswer> {
    const known = this.#jobs.get(cmd.jobId);
    if (known !== undefined) return { jobId: known.jobId, state: known.state, known: true };
    if (this.#stopping) throw new AgentError('AGENT_INTERNAL', 'the agent is stopping');
    const busy = [...this.#jobs.values()].find((j) => !isFinal(j.state));
    if (busy !== undefined) {
      throw new AdaptJobError('AGENT_ADAPT_BUSY', `adaptation job ${busy.jobId} is ${busy.state}; one job runs at a time (cancel it with adapt-cancel, or wait for it)`);
    }
    const host = this.#host;
    const cfg = host.config.adapt;
    const active = host.active();
    if (active === undefined) throw new AgentError('AGENT_NO_ACTIVE_MODEL', 'no model is active on this device: there is nothing to adapt');
    const base = active.manifest;
    if (cmd.base !== undefined && (cmd.base.name !== base.name || cmd.base.version !== base.version)) {
      throw new AdaptJobError('AGENT_ADAPT_BASE_MISMATCH', `the command adapts ${cmd.base.name}@${cmd.base.version}, but ${base.name}@${base.version} is serving`);
    }
    if (base.weights === undefined) {
      throw new AdaptJobError('AGENT_ADAPT_NO_WEIGHTS', `${base.name}@${base.version} carries no trainable weights (manifest weights); package it with kd-trainer package --weights-file to adapt it on the device`);
    }
    const teacher = await resolveTeacherOf(host, cmd);
    if (teacher.manifest.names.length !== base.names.length || teacher.manifest.names.some((n, i) => n !== base.names[i])) {
      throw new AdaptJobError('AGENT_ADAPT_TEACHER_MISMATCH', `teacher ${teacher.manifest.name}@${teacher.manifest.version} has classes ${JSON.stringify(teacher.manifest.names)}, the serving ${base.name}@${base.version} has ${JSON.stringify(base.names)}`);
    }
    const capture = host.captureInfo();
    if (capture === undefined) throw new AdaptJobError('AGENT_ADAPT_TOO_FEW_FRAMES', 'frame capture is off (capture.enabled), so there are no frames to adapt on');
    if (capture.frames < cfg.minFrames) {
      throw new AdaptJobError('AGENT_ADAPT_TOO_FEW_FRAMES', `the capture holds ${capture.frames} frames (${capture.dir}); a job needs at least ${cfg.minFrames} (adapt.minFrames)`);
    }
    const trainer = locateTrainer({ configured: cfg.trainer });
    const shape = base.input.shape;
    const inputSize = typeof shape[2] === 'number' && typeof shape[3] === 'number' ? Math.max(shape[2], shape[3]) : undefined;
    // The command's value, else the serving package's (manifest adapt.recipe), else the configuration's, else kd-trainer's.
    const resolved = resolveAdaptRecipe({ command: cmd.recipe, package: base.adapt?.recipe, config: cfg, inputSize });
    const { batch } = batchForBudget({ budgetMb: resolved.recipe.memoryBudgetMb, baseMb: cfg.memoryBaseMb, imgsz: resolved.recipe.imgsz ?? 320 });
    const recipe: AdaptJobRecord['recipe'] = { ...resolved.recipe, batch, threads: cfg.threads, nice: cfg.nice };
    // What the job folder will take, against the space the agent always leaves free (limits.reserveDiskBytes).
    const replayDir = (base as { replay?: { dir?: unknown } }).replay?.dir;
    const estimate = await estimateJobBytes({
      weights: join(active.stored.dir, base.weights.path), frames: capture.dir,
      val: base.val === undefined ? [] : [join(active.stored.dir, base.val.images), join(active.stored.dir, base.val.labels)],
      // The label files are a few bytes an image: the images are what the estimate needs.
      ...(typeof replayDir === 'string' ? { replay: join(active.stored.dir, replayDir) } : {}),
    });
    await mkdir(this.root, { recursive: true });
    await checkAdaptDisk({ dir: this.root, estimate, reserveBytes: host.config.limits.reserveDiskBytes, ...(this.#statfs ? { statfs: this.#statfs } : {}) });

    // The job's own copy of the student and val/: a deploy meanwhile may collect the base from the store.
    const dir = join(this.root, cmd.jobId);
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, 'base'), { recursive: true });
    const weights = join(dir, 'base', 'model.kdw');
    await copyFile(join(active.stored.dir, base.weights.path), weights);
    await copyFile(join(active.stored.dir, 'manifest.json'), join(dir, 'base', 'manifest.json'));
    let val: string | undefined;
    if (base.val !== undefined) {
      await cp(join(active.stored.dir, base.val.images), join(dir, 'base', base.val.images), { recursive: true });
      await cp(join(active.stored.dir, base.val.labels), join(dir, 'base', base.val.labels), { recursive: true });
      // kd-trainer takes a folder with images/ and labels/: the package layout's val/.
      const parent = dirname(base.val.images);
      if (basename(base.val.images) === 'images' && base.val.labels === join(parent, 'labels')) val = join(dir, 'base', parent);
      else this.#log.warn(`adapt: ${base.name}@${base.version}'s val set (${base.val.images}, ${base.val.labels}) is not an images/ and labels/ pair; the job runs without --val`);
    }
    // Replay images of the base's own domain (manifest `replay`), and their labels, trained on beside the frames against forgetting.
    const replay = base.replay === undefined ? undefined : await copyJobReplay(active.stored.dir, base.replay, join(dir, 'base'));
    const jobDir = join(dir, 'job');
    const args = adaptChildArgs({ frames: capture.dir, teacher: teacher.file, weights, out: jobDir, val, replay, threads: cfg.threads, batch, recipe, extraArgs: cfg.extraArgs });
    const now = new Date().toISOString();
    const rec: AdaptJobRecord = {
      v: 1, jobId: cmd.jobId, commandId: cmd.id, state: 'queued', createdAt: now, updatedAt: now, stages: { queued: now },
      activate: cmd.activate ?? true,
      base: { name: base.name, version: base.version, key: active.stored.key, sha256: active.stored.info.sha256, precision: active.model.precision },
      teacher: { name: teacher.manifest.name, version: teacher.manifest.version, key: teacher.stored.key },
      recipe, recipeFrom: resolved.from, args, paths: { dir, jobDir, frames: capture.dir, weights, teacher: teacher.file, ...(val ? { val } : {}) }, msg: {},
    };
    this.#log.info(`adapt: job ${cmd.jobId} adapts ${base.name}@${base.version} with teacher ${teacher.manifest.name}@${teacher.manifest.version} on ${capture.frames} frames (batch ${batch}; ${trainer.argv.join(' ')})`);
    this.#jobs.set(rec.jobId, rec);
    await this.#save(rec);
    this.#publish(rec);
    this.#start(rec.jobId);
    return { jobId: rec.jobId, state: rec.state };
  }

  /**
   * The schedule (`adapt.schedule`): at `now`, inside the window, with no job unfinished, no scheduled job started
   * within `everyHours`, and enough frames captured, admits a job `sched-<UTC minute>` with no command (its messages
   * say `commandId: null`) and the configuration's recipe. Returns the job started, or why none was (a refusal is
   * logged once, not thrown: nobody sent a command to answer). The agent calls it every minute.
   */
  async tick(now: Date = new Date()): Promise<AdaptAnswer | { skipped: string }> {
    const sched = this.#host.config.adapt.schedule;
    if (sched === undefined) return { skipped: 'no adapt.schedule' };
    if (this.#stopping) return { skipped: 'stopping' };
    if (!inWindow(sched.window, now)) return { skipped: `outside the window ${sched.window}` };
    const unfinished = [...this.#jobs.values()].find((j) => !isFinal(j.state));
    if (unfinished !== undefined) return { skipped: `job ${unfinished.jobId} is ${unfinished.state}` };
    const last = [...this.#jobs.values()].filter((j) => j.commandId === null).map((j) => Date.parse(j.createdAt)).sort((a, b) => b - a)[0];
    if (last !== undefined && now.getTime() - last < sched.everyHours * 3600_000) return { skipped: `a scheduled job started ${new Date(last).toISOString()}, within every ${sched.everyHours} h` };
    const frames = this.#host.captureInfo()?.frames ?? 0;
    if (frames < this.#host.config.adapt.minFrames) return { skipped: `${frames} frames captured, fewer than adapt.minFrames (${this.#host.config.adapt.minFrames})` };
    const jobId = `sched-${now.toISOString().slice(0, 16).replace(/[-:]/g, '')}`;
    try {
      const answer = await this.admit({ id: null, jobId, activate: sched.activate });
      this.#scheduleRefusal = undefined;
      return answer;
    } catch (err) {
      const why = `${errorCode(err)}: ${(err as Error).message}`;
      if (why !== this.#scheduleRefusal) this.#log.warn(`adapt: the scheduled job was not started: ${why}`);
      this.#scheduleRefusal = why;
      return { skipped: why };
    }
  }

  /**
   * Cancels a job: SIGINT to its kd-trainer child (it saves its checkpoint and exits 130), and the job ends
   * `cancelled`; a job between the child and its activation ends `cancelled` before it activates anything. A final
   * job stays as it ended (its state is the answer); an unknown one is AdaptJobError 'AGENT_ADAPT_UNKNOWN_JOB'.
   */
  async cancel(jobId: string): Promise<AdaptAnswer> {
    const rec = this.#jobs.get(jobId);
    if (rec === undefined) throw new AdaptJobError('AGENT_ADAPT_UNKNOWN_JOB', `no adaptation job ${jobId} on this device`);
    if (isFinal(rec.state)) return { jobId, state: rec.state, known: true };
    rec.cancelRequested = true;
    await this.#save(rec);
    const running = this.#running?.jobId === jobId ? this.#running : undefined;
    if (running === undefined) {
      // Not running (waiting behind another job): it ends here.
      await this.#finish(rec, 'cancelled', { message: 'cancelled before it ran' });
      return { jobId, state: rec.state };
    }
    running.child?.signal('SIGINT');
    await running.promise;
    return { jobId, state: rec.state };
  }

  /**
   * `adapt-upload` (a fleet's pull): packs the job's adapted package as installed in the store (the bytes the device
   * verified with its own key and serves or keeps for review) into a temporary tar in the job's folder and PUTs it to
   * `url`, the fleet's one-time upload URL; the tar is deleted either way. Only a `succeeded` job whose package is
   * still in the store has one: else AdaptJobError 'AGENT_ADAPT_NO_PACKAGE' (the store keeps the serving and the
   * previous version, so pull an adaptation before two later deploys). An unknown job is 'AGENT_ADAPT_UNKNOWN_JOB'.
   */
  async upload(jobId: string, url: string, options: { signal?: AbortSignal; caFile?: string } = {}): Promise<{ version: string; sha256: string; size: number }> {
    const rec = this.#jobs.get(jobId);
    if (rec === undefined) throw new AdaptJobError('AGENT_ADAPT_UNKNOWN_JOB', `no adaptation job ${jobId} on this device`);
    const version = rec.msg.version;
    const stored = rec.state === 'succeeded' && rec.package !== undefined && version !== undefined ? this.#host.store.get(rec.package.key) : undefined;
    if (stored === undefined || version === undefined) {
      const why = rec.state !== 'succeeded' ? `it is ${rec.state}, not succeeded` : 'its package is no longer in the model store';
      throw new AdaptJobError('AGENT_ADAPT_NO_PACKAGE', `adaptation job ${jobId} has no adapted package to upload: ${why}`);
    }
    await mkdir(rec.paths.dir, { recursive: true });
    const tar = join(rec.paths.dir, `upload-${process.pid}-${Date.now()}.tar`);
    try {
      await packDirectory(stored.dir, tar);
      const sent = await uploadPackage(tar, url, { signal: options.signal, caFile: options.caFile, logger: this.#log });
      this.#log.info(`adapt: ${jobId}: uploaded ${rec.base.name}@${version} (${sent.size} bytes, sha256 ${sent.sha256.slice(0, 12)}…)`);
      return { version, sha256: sent.sha256, size: sent.size };
    } finally {
      await rm(tar, { force: true });
    }
  }

  /**
   * Stops for an agent shutdown: the child is asked to stop (SIGINT, then SIGKILL after the grace period) and the
   * job is left unfinished, to resume at the next start. Nothing final is published.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    const running = this.#running;
    if (running !== undefined) {
      running.child?.signal('SIGINT');
      const kill = setTimeout(() => running.child?.signal('SIGKILL'), this.#killGraceMs);
      await running.promise.catch(() => undefined);
      clearTimeout(kill);
    }
    await this.#chain.catch(() => undefined);
    await this.#publishing;
  }

  // --- the job ---

  #start(jobId: string): void {
    this.#chain = this.#chain.then(async () => {
      const rec = this.#jobs.get(jobId);
      if (rec === undefined || isFinal(rec.state) || this.#stopping) return;
      const running: Running = { jobId, promise: Promise.resolve() };
      running.promise = this.#run(rec, running);
      this.#running = running;
      await running.promise;
      this.#running = undefined;
    });
  }

  async #run(rec: AdaptJobRecord, running: Running): Promise<void> {
    try {
      if (rec.cancelRequested) return await this.#finish(rec, 'cancelled', { message: 'cancelled' });
      if (TRAINER_STATES.includes(rec.state)) await this.#train(rec, running);
      if (rec.state === 'packaging') await this.#package(rec);
      if (rec.state === 'activating') await this.#activate(rec);
    } catch (err) {
      if (err instanceof Unfinished) {
        this.#log.info(`adapt: job ${rec.jobId} left ${rec.state}; it resumes at the next start`);
        return;
      }
      if (this.#stopping) {
        this.#log.warn(`adapt: job ${rec.jobId} stopped in ${rec.state} (${(err as Error).message}); it resumes at the next start`);
        return;
      }
      if (!(err instanceof Error) || errorCode(err) === 'AGENT_INTERNAL') this.emit('error', err as Error);
      await this.#finish(rec, 'failed', { code: errorCode(err), message: (err as Error).message }).catch((e: unknown) => this.emit('error', e as Error));
    }
  }

  /** The kd-trainer child: labelling, training, evaluation, export; its exit decides what follows. */
  async #train(rec: AdaptJobRecord, running: Running): Promise<void> {
    await this.#stopOrphan(rec);
    const host = this.#host;
    const trainer = locateTrainer({ configured: host.config.adapt.trainer });
    const before = host.servingStats();
    const t0 = performance.now();
    const budget = rec.recipe.memoryBudgetMb;
    let overBudget: number | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const child = startAdaptChild({
      trainer: trainer.argv, args: rec.args, nice: rec.recipe.nice, threads: rec.recipe.threads, cwd: rec.paths.dir,
      onProgress: (p) => this.#onProgress(rec, p),
    });
    running.child = child;
    rec.childPid = child.pid;
    const started = child.pid > 0 ? await procStat(child.pid) : undefined;
    if (started !== undefined) rec.childStartTime = started.startTime;
    rec.serving = { ...(before ? { fpsBefore: before.fps } : {}) };
    await this.#save(rec);
    const monitor = child.pid > 0 ? new RssMonitor({
      pid: child.pid, intervalMs: this.#rssIntervalMs,
      onSample: ({ rssMb }) => {
        if (budget === undefined || rssMb <= budget || overBudget !== undefined) return;
        overBudget = rssMb;
        this.#log.warn(`adapt: job ${rec.jobId} uses ${rssMb} MiB, over its budget of ${budget} MiB; stopping it`);
        child.signal('SIGINT');
        killTimer = setTimeout(() => child.signal('SIGKILL'), Math.min(this.#killGraceMs, 10_000));
      },
    }) : undefined;
    monitor?.start();
    if (this.#stopping) child.signal('SIGINT');
    let exit: AdaptChildExit;
    try {
      exit = await child.done;
    } finally {
      monitor?.stop();
      clearTimeout(killTimer);
      running.child = undefined;
    }
    await this.#publishing;
    const after = host.servingStats();
    const seconds = (performance.now() - t0) / 1000;
    if (before !== undefined && after !== undefined && seconds > 0) {
      rec.serving = { ...rec.serving, fpsDuring: Math.round(((after.frames - before.frames) / seconds) * 100) / 100 };
    }
    if (monitor !== undefined) rec.peakRssMb = Math.max(rec.peakRssMb ?? 0, monitor.peakMb);
    delete rec.childPid;
    delete rec.childStartTime;

    if (overBudget !== undefined) {
      throw new AdaptJobError('ADAPT_MEMORY_BUDGET', `the job's processes took ${Math.max(overBudget, monitor?.peakMb ?? 0)} MiB (peak), over its memory budget of ${budget} MiB; stopped in ${rec.state}`);
    }
    const interrupted = exit.exitCode === ADAPT_EXIT.interrupted || exit.cancelled !== undefined;
    if (rec.cancelRequested && (interrupted || exit.signal !== null)) return this.#finish(rec, 'cancelled', { message: `cancelled in ${rec.state}` });
    if (this.#stopping && (interrupted || exit.signal !== null)) {
      await this.#save(rec);
      throw new Unfinished();
    }
    if (exit.exitCode === ADAPT_EXIT.accepted && exit.report !== undefined) {
      this.#takeReport(rec, exit.report);
      return this.#enter(rec, 'packaging');
    }
    if (exit.exitCode === ADAPT_EXIT.rejected && exit.report !== undefined) {
      this.#takeReport(rec, exit.report);
      return this.#finish(rec, 'rejected', { accepted: false });
    }
    if (exit.exitCode === ADAPT_EXIT.error && exit.code !== undefined) {
      throw new AdaptJobError(exit.code as 'ADAPT_CHILD_FAILED', `kd-trainer adapt: ${exit.message ?? exit.code}`);
    }
    const how = exit.signal !== null ? `was killed by ${exit.signal}` : exit.exitCode === null ? 'did not start' : `exited with code ${exit.exitCode}`;
    throw new AdaptJobError('ADAPT_CHILD_FAILED', `kd-trainer adapt ${how} in ${rec.state}${exit.stderrTail.length ? `: ${exit.stderrTail.slice(-12).join('\n')}` : ''}`.slice(0, 4000));
  }

  /**
   * A kd-trainer of an earlier agent process that still works on this job (the agent was killed): the owner of the job
   * folder's lock (`job/lock`, written by kd-trainer with its pid and start time) and the child the record names (in
   * case it died before it took the lock), each stopped (SIGTERM: it saves its checkpoint; SIGKILL after the grace)
   * and waited for before this start's child begins: never two trainers on one job folder. A lock whose owner is gone,
   * or whose pid now belongs to another process, is stale: kd-trainer replaces it.
   */
  async #stopOrphan(rec: AdaptJobRecord): Promise<void> {
    const targets: { pid: number; startTime: string | null; what: string }[] = [];
    const owner = await readJobLock(rec.paths.jobDir);
    if (owner !== undefined && owner.pid !== process.pid && (await processAlive(owner.pid, owner.startTime))) {
      targets.push({ pid: owner.pid, startTime: owner.startTime, what: `holds ${rec.paths.jobDir}/lock` });
    }
    const pid = rec.childPid;
    if (pid !== undefined && !targets.some((t) => t.pid === pid) && (await processAlive(pid, rec.childStartTime ?? null))) {
      // Without a start time (a record of an older agent), the command line must name this job.
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (rec.childStartTime !== undefined || cmdline.includes(rec.paths.jobDir)) targets.push({ pid, startTime: rec.childStartTime ?? null, what: 'was started by an earlier agent process' });
    }
    for (const t of targets) {
      this.#log.warn(`adapt: job ${rec.jobId}: kd-trainer ${t.pid} ${t.what} and still runs; stopping it before resuming`);
      const how = await stopProcess(t.pid, { startTime: t.startTime, graceMs: this.#killGraceMs });
      if (how === 'stuck') throw new AdaptJobError('ADAPT_CHILD_FAILED', `kd-trainer ${t.pid} of an earlier start of job ${rec.jobId} does not stop (not even on SIGKILL); the job cannot go on beside it`);
      this.#log.info(`adapt: job ${rec.jobId}: kd-trainer ${t.pid} ${how}`);
    }
  }

  #onProgress(rec: AdaptJobRecord, p: Record<string, unknown>): void {
    const state = STAGE_STATES[String(p.stage)];
    if (state === undefined || isFinal(rec.state)) return;
    const m = rec.msg;
    const prevState = rec.state;
    if (p.stage === 'label') {
      const done = num(p.done);
      const total = num(p.total);
      if (done === undefined || total === undefined || total < 1) return;
      // Each tenth of the frames (and the last), not every batch.
      const tenth = Math.floor((done / total) * 10);
      const was = m.progress ? Math.floor((m.progress.done / Math.max(1, m.progress.total)) * 10) : -1;
      m.progress = { done: Math.min(done, total), total };
      if (tenth === was && prevState === 'labelling' && done !== total) return;
    } else if (p.stage === 'train') {
      delete m.progress;
      const epochs = num(p.epochs);
      const epoch = num(p.epoch);
      if (epochs !== undefined && epochs >= 1) m.epochs = epochs;
      if (epoch !== undefined) m.epoch = m.epochs !== undefined ? Math.min(epoch, m.epochs) : epoch;
      if (typeof p.losses === 'object' && p.losses !== null) {
        m.losses = Object.fromEntries(Object.entries(p.losses as Record<string, unknown>).filter(([, v]) => typeof v === 'number' && Number.isFinite(v))) as Record<string, number>;
      }
      const h = figures(p.holdout);
      if (h !== undefined) m.holdout = { ...m.holdout, after: h };
    } else if (p.stage === 'evaluate') {
      const f = figures(p);
      const set = p.set === 'val' ? 'val' : p.set === 'holdout' ? 'holdout' : undefined;
      const which = p.model === 'serving' ? 'before' : p.model === 'adapted' ? 'after' : undefined;
      if (f !== undefined && set !== undefined && which !== undefined) m[set] = { ...m[set], [which]: f };
    }
    rec.state = state;
    if (prevState !== state) rec.stages[state] = new Date().toISOString();
    if (state === 'training' && m.frames === undefined) {
      // The split is known once labelling wrote labels.json.
      void readFile(join(rec.paths.jobDir, 'data', 'labels.json'), 'utf8').then((t) => {
        const split = (JSON.parse(t) as { split?: { adapt?: unknown; holdout?: unknown } }).split;
        if (num(split?.adapt) !== undefined && num(split?.holdout) !== undefined) m.frames = { used: split!.adapt as number, holdout: split!.holdout as number };
      }).catch(() => undefined);
    }
    void this.#save(rec).catch((err: unknown) => this.emit('error', err as Error));
    this.#publish(rec);
  }

  /** The figures of kd-trainer's report (adapt.json) into the message. */
  #takeReport(rec: AdaptJobRecord, r: Record<string, unknown>): void {
    const m = rec.msg;
    const report = r as {
      accepted?: unknown; reasons?: unknown; split?: { adapt?: unknown; holdout?: unknown };
      training?: { epochs?: unknown; epochsRun?: unknown };
      evaluation?: Record<'holdout' | 'val', { images?: unknown; serving?: unknown; adapted?: unknown } | undefined>;
      peakRssMiB?: unknown;
    };
    if (typeof report.accepted === 'boolean') m.accepted = report.accepted;
    if (Array.isArray(report.reasons)) m.reasons = report.reasons.filter((x): x is string => typeof x === 'string').slice(0, 32).map((x) => x.slice(0, 512));
    const used = num(report.split?.adapt);
    const holdout = num(report.split?.holdout);
    if (used !== undefined && holdout !== undefined) m.frames = { used, holdout };
    const epochs = num(report.training?.epochs);
    const run = num(report.training?.epochsRun);
    if (epochs !== undefined && epochs >= 1) m.epochs = epochs;
    if (run !== undefined && m.epochs !== undefined) m.epoch = Math.min(run, m.epochs);
    for (const set of ['holdout', 'val'] as const) {
      const e = report.evaluation?.[set];
      if (e === undefined || e === null) continue;
      const before = figures(e.serving);
      const after = figures(e.adapted);
      const images = num(e.images);
      m[set] = { ...(images !== undefined ? { images } : {}), ...(before ? { before } : {}), ...(after ? { after } : {}) };
    }
    const rss = num(report.peakRssMiB);
    if (rss !== undefined) rec.peakRssMb = Math.max(rec.peakRssMb ?? 0, Math.round(rss * 10) / 10);
  }

  /** Names the version, builds and signs the package, verifies it with the device key, installs it. Idempotent. */
  async #package(rec: AdaptJobRecord): Promise<void> {
    const host = this.#host;
    if (rec.n === undefined || rec.msg.version === undefined || rec.packageCreatedAt === undefined) {
      // Named and fixed before anything is written, so a rebuild after a crash makes the same package.
      const root = parseAdaptedVersion(rec.base.version)?.base ?? rec.base.version;
      rec.n = await this.#nextN(rec, root);
      rec.msg.version = adaptedVersion(root, host.deviceId, rec.n);
      rec.packageCreatedAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      await this.#save(rec);
      this.#publish(rec);
    }
    const version = rec.msg.version;
    const installed = host.store.list().find((v) => v.info.name === rec.base.name && v.info.version === version);
    if (installed === undefined) {
      const manifest = parseManifest(JSON.parse(await readFile(join(rec.paths.dir, 'base', 'manifest.json'), 'utf8').catch(async () => {
        const stored = host.store.get(rec.base.key);
        if (stored === undefined) throw new AdaptJobError('ADAPT_PACKAGE_FAILED', `the base ${rec.base.name}@${rec.base.version} is no longer installed`);
        return readFile(join(stored.dir, 'manifest.json'), 'utf8');
      })));
      const built = await buildAdaptedPackage({
        jobDir: rec.paths.jobDir, dir: join(rec.paths.dir, 'package'), version, createdAt: rec.packageCreatedAt,
        base: { manifest, dir: join(rec.paths.dir, 'base'), precision: rec.base.precision }, privateKey: host.deviceKey.privateKey,
      });
      const staging = await host.store.stagingPath();
      try {
        await extractTar(built.tar, staging, { maxFileBytes: host.config.limits.maxPackageBytes, maxTotalBytes: host.config.limits.maxPackageBytes * 4 });
        // The device's own key and nothing else: a package this device made never verifies against a fleet key, and back.
        await verifyOwnPackage(staging, host.deviceKey, { maxTotalBytes: host.config.limits.maxPackageBytes * 4 });
        const stored = await host.store.install(staging, { name: rec.base.name, version, sha256: built.sha256 });
        rec.package = { key: stored.key, sha256: built.sha256 };
      } catch (err) {
        await host.store.releaseStaging(staging).catch(() => undefined);
        throw err;
      }
    } else {
      rec.package = { key: installed.key, sha256: installed.info.sha256 };
    }
    await rm(join(rec.paths.dir, 'package'), { recursive: true, force: true });
    await rm(join(rec.paths.dir, 'package.tar'), { force: true });
    if (rec.cancelRequested) return this.#finish(rec, 'cancelled', { message: 'cancelled after packaging; the adapted package is kept, not activated' });
    if (this.#stopping) throw new Unfinished();
    if (!rec.activate) return this.#finish(rec, 'succeeded', { activated: false, reasons: [...(rec.msg.reasons ?? []), 'kept for review (activate: false)'] });
    return this.#enter(rec, 'activating');
  }

  /** 1 + the highest adaptation counter of this base on this device, in the store and in every other job. */
  /**
   * The next counter of `<root>+adapt.<device>.<n>`: above every adapted version this device still knows (its store,
   * its high-water mark, its jobs) and above every counter it ever issued (`.adapted-versions.json` in the jobs'
   * folder, raised durably before the version is used), so a version string never returns with other bytes after its
   * job and package were pruned.
   */
  async #nextN(rec: AdaptJobRecord, root: string): Promise<number> {
    let n = 0;
    const count = (name: string, version: string | undefined): void => {
      if (name !== rec.base.name || version === undefined) return;
      const a = parseAdaptedVersion(version);
      if (a !== undefined && a.base === root && a.deviceId === this.#host.deviceId) n = Math.max(n, a.n);
    };
    for (const v of this.#host.store.list()) count(v.info.name, v.info.version);
    count(rec.base.name, this.#host.store.highWater(rec.base.name)?.version);
    for (const j of this.#jobs.values()) if (j !== rec) count(j.base.name, j.msg.version);
    const file = join(this.root, ISSUED_FILE);
    const issued = await readFile(file, 'utf8').then((t) => JSON.parse(t) as Record<string, number>, () => ({} as Record<string, number>));
    const key = `${rec.base.name}@${root}`;
    const next = Math.max(n, Number.isSafeInteger(issued[key]) ? issued[key]! : 0) + 1;
    await writeFileDurable(file, `${JSON.stringify({ ...issued, [key]: next })}\n`);
    return next;
  }

  /** The deploy's gates on the device (accuracy on val/, benchmark, `adapt.gates`), then the activation through the command queue. */
  async #activate(rec: AdaptJobRecord): Promise<void> {
    const host = this.#host;
    const stored: StoredVersion | undefined = rec.package ? host.store.get(rec.package.key) : undefined;
    if (stored === undefined) throw new AdaptJobError('ADAPT_PACKAGE_FAILED', `the adapted package ${rec.base.name}@${rec.msg.version} is not installed`);
    if (host.store.current()?.key === stored.key) {
      // Activated before a crash cut the job short: the store's pointer is the truth.
      return this.#finish(rec, 'succeeded', { activated: true });
    }
    if (!rec.activate) return this.#finish(rec, 'succeeded', { activated: false, reasons: [...(rec.msg.reasons ?? []), 'kept for review (activate: false)'] });
    const candidate = await host.load(stored, 'deploy');
    let activated = false;
    try {
      const accuracy = await onDeviceAccuracy(candidate);
      const bench = host.transformBench(await benchmarkModel(candidate, {
        deviceId: host.deviceId, commandId: rec.commandId ?? rec.jobId, warmup: host.config.benchmark.warmup, iterations: host.config.benchmark.iterations, accuracy,
      }));
      await host.publishBench(bench);
      const gate = gateFailure(host.config.adapt.gates, bench);
      if (gate !== undefined) {
        return await this.#finish(rec, 'rejected', { accepted: false, reasons: [...(rec.msg.reasons ?? []), gate], message: `${gate}; ${rec.base.name}@${rec.base.version} keeps serving` });
      }
      const outcome = await host.exclusive(async (): Promise<'activated' | 'moved' | 'cancelled' | 'stopping'> => {
        if (this.#stopping) return 'stopping';
        if (rec.cancelRequested) return 'cancelled';
        if (host.active()?.stored.key !== rec.base.key) return 'moved';
        await host.activate(candidate, 'activate');
        activated = true;
        return 'activated';
      });
      if (outcome === 'stopping') throw new Unfinished();
      if (outcome === 'cancelled') return await this.#finish(rec, 'cancelled', { message: 'cancelled before activation; the adapted package is kept, not activated' });
      if (outcome === 'moved') {
        const now = host.active();
        const reason = `the serving model changed to ${now ? `${now.manifest.name}@${now.manifest.version}` : 'none'} during the job; the adaptation of ${rec.base.version} is kept for review`;
        return await this.#finish(rec, 'succeeded', { activated: false, reasons: [...(rec.msg.reasons ?? []), reason] });
      }
      await this.#finish(rec, 'succeeded', { activated: true });
    } finally {
      if (!activated) await candidate.detector.dispose().catch(() => undefined);
    }
  }

  // --- state, messages, files ---

  async #enter(rec: AdaptJobRecord, state: AdaptState): Promise<void> {
    rec.state = state;
    rec.stages[state] = new Date().toISOString();
    await this.#save(rec);
    this.#publish(rec);
  }

  async #finish(rec: AdaptJobRecord, state: AdaptState, fields: AdaptJobRecord['msg'] = {}): Promise<void> {
    if (state !== 'failed') {
      delete rec.msg.code;
    }
    Object.assign(rec.msg, fields);
    if (state === 'failed' && rec.msg.code === undefined) rec.msg.code = 'ADAPT_CHILD_FAILED';
    if (rec.msg.message !== undefined) rec.msg.message = rec.msg.message.slice(0, 4000);
    delete rec.msg.progress;
    // The final word: rejected (acceptance or a gate) is not accepted; failed or cancelled keep what is known.
    if (state === 'succeeded') rec.msg.accepted = true;
    if (state === 'rejected') rec.msg.accepted = false;
    rec.finishedAt = new Date().toISOString();
    await this.#enter(rec, state);
    this.#log.info(`adapt: job ${rec.jobId} ${state}${rec.msg.code ? ` (${rec.msg.code})` : ''}${rec.msg.message ? `: ${rec.msg.message}` : ''}`);
    await this.#cleanUp(rec).catch((err: unknown) => this.#log.warn(`adapt: cleaning up job ${rec.jobId}: ${(err as Error).message}`));
  }

  /** After a final state: the frames' hard links, the training run and the export, the package staging and the base copy go; the records stay. */
  async #cleanUp(rec: AdaptJobRecord): Promise<void> {
    for (const p of [join(rec.paths.jobDir, 'data'), join(rec.paths.jobDir, 'run'), join(rec.paths.jobDir, 'export'), join(rec.paths.dir, 'package'), join(rec.paths.dir, 'package.tar'), join(rec.paths.dir, 'base')]) {
      await rm(p, { recursive: true, force: true });
    }
    const finished = [...this.#jobs.values()].filter((j) => isFinal(j.state)).sort((a, b) => (a.finishedAt ?? a.updatedAt).localeCompare(b.finishedAt ?? b.updatedAt));
    for (const old of finished.slice(0, Math.max(0, finished.length - this.#host.config.adapt.keepJobs))) {
      await rm(old.paths.dir, { recursive: true, force: true });
      this.#jobs.delete(old.jobId);
    }
  }

  /** Writes the record atomically; writes are queued and each takes the record as it is then, so an older state never lands last. */
  #save(rec: AdaptJobRecord): Promise<void> {
    const write = async (): Promise<void> => {
      rec.updatedAt = new Date().toISOString();
      await mkdir(rec.paths.dir, { recursive: true });
      await writeFileDurable(join(rec.paths.dir, JOB_FILE), `${JSON.stringify(rec, null, 2)}\n`);
    };
    const run = this.#saving.then(write, write);
    this.#saving = run.catch(() => undefined);
    return run;
  }

  /** The job's message now; published in order, retained. A message that does not validate is an error event, not a crash. */
  #publish(rec: AdaptJobRecord): void {
    let msg: AdaptMessage;
    try {
      msg = messageOf(rec, this.#host.deviceId);
    } catch (err) {
      this.emit('error', err as Error);
      return;
    }
    this.emit('adapt', msg);
    this.#publishing = this.#publishing.then(() => this.#host.publishAdapt(msg)).catch((err: unknown) => void this.emit('error', err as Error));
  }
}

/** The adapt message of a job record. */
export function messageOf(rec: AdaptJobRecord, deviceId: string): AdaptMessage {
  const m = rec.msg;
  return makeAdapt({
    deviceId, jobId: rec.jobId, commandId: rec.commandId, state: rec.state,
    base: { name: rec.base.name, version: rec.base.version }, teacher: { name: rec.teacher.name, version: rec.teacher.version },
    ...pick({
      version: m.version, progress: rec.state === 'labelling' ? m.progress : undefined, frames: m.frames, epoch: m.epoch, epochs: m.epochs, losses: m.losses,
      holdout: m.holdout, val: m.val, accepted: m.accepted, reasons: m.reasons, activated: m.activated, code: rec.state === 'failed' ? m.code : undefined,
      message: m.message,
    }),
    ...(rec.serving ? { serving: rec.serving } : {}),
    ...(rec.peakRssMb !== undefined ? { peakRssMb: rec.peakRssMb } : {}),
  } as Parameters<typeof makeAdapt>[0]);
}

/** The first gate of `adapt.gates` that a bench report fails, as a sentence, or undefined. */
export function gateFailure(g: { maxP95Ms?: number; minFps?: number; minMap50?: number }, bench: BenchMessage): string | undefined {
  if (g.maxP95Ms !== undefined && bench.latencyMs.p95 > g.maxP95Ms) return `gate: p95 latency ${bench.latencyMs.p95.toFixed(2)} ms is over the budget of ${g.maxP95Ms} ms`;
  if (g.minFps !== undefined && bench.throughputFps < g.minFps) return `gate: throughput ${bench.throughputFps.toFixed(1)} fps is under the required ${g.minFps} fps`;
  if (g.minMap50 !== undefined && bench.accuracy !== undefined && bench.accuracy.map50 < g.minMap50) {
    return `gate: on-device mAP50 ${bench.accuracy.map50.toFixed(3)} on ${bench.accuracy.images} val images is under the required ${g.minMap50}`;
  }
  return undefined;
}

/**
 * Whether `now` (local time) is inside `window`, `HH:MM-HH:MM`; a window whose end is before its start wraps past
 * midnight (`22:00-05:00`), and equal ends mean the whole day.
 */
export function inWindow(window: string, now: Date): boolean {
  const m = /^(\d{2}):(\d{2})-(\d{2}):(\d{2})$/.exec(window);
  if (m === null) throw new RangeError(`window must be HH:MM-HH:MM, got ${JSON.stringify(window)}`);
  const start = Number(m[1]) * 60 + Number(m[2]);
  const end = Number(m[3]) * 60 + Number(m[4]);
  const t = now.getHours() * 60 + now.getMinutes();
  if (start === end) return true;
  return start < end ? t >= start && t < end : t >= start || t < end;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** mAP50 and mAP50-95 of an object with `map50` and `map` in [0, 1], or undefined. */
function figures(v: unknown): { map50: number; map: number } | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { map50, map } = v as { map50?: unknown; map?: unknown };
  if (typeof map50 !== 'number' || typeof map !== 'number' || !(map50 >= 0 && map50 <= 1 && map >= 0 && map <= 1)) return undefined;
  return { map50, map };
}

/** `o` without its undefined fields. */
function pick<T extends Record<string, unknown>>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

/**
 * Copies a package's replay images (manifest `replay.dir`) to `<into>/replay/images` and, when it has them, their label
 * files (`replay.labels`) to `<into>/replay/labels`, siblings whatever the package's own paths, so that kd-trainer adapt
 * finds each image's labels by the images → labels rule. Returns the images folder: the job's `--replay`.
 * @example
 * const replay = await copyJobReplay(stored.dir, manifest.replay, join(jobDir, 'base')); // …/base/replay/images
 */
export async function copyJobReplay(packageDir: string, replay: NonNullable<Manifest['replay']>, into: string): Promise<string> {
  const images = join(into, 'replay', 'images');
  await cp(join(packageDir, replay.dir), images, { recursive: true });
  if (replay.labels !== undefined) await cp(join(packageDir, replay.labels), join(into, 'replay', 'labels'), { recursive: true });
  return images;
}

/** The teacher of a command: the one it names, else `adapt.teacher`, else the teacher store's current one. */
async function resolveTeacherOf(host: AdaptHost, cmd: Pick<AdaptRequest, 'teacher'>): Promise<{ stored: StoredVersion; manifest: Manifest; file: string }> {
  const named = cmd.teacher ?? parseRef(host.config.adapt.teacher);
  let stored: StoredVersion | undefined | null;
  if (named !== undefined) {
    stored = host.teachers.list().find((v) => v.info.name === named.name && v.info.version === named.version);
    if (stored === undefined) {
      const have = host.teachers.list().map((v) => `${v.info.name}@${v.info.version}`);
      throw new AdaptJobError('AGENT_ADAPT_NO_TEACHER', `teacher ${named.name}@${named.version}${cmd.teacher ? '' : ' (adapt.teacher)'} is not installed on this device (teachers: ${have.length ? have.join(', ') : 'none'}); deploy it as a teacher package first`);
    }
  } else {
    stored = host.teachers.current();
    if (stored === null) throw new AdaptJobError('AGENT_ADAPT_NO_TEACHER', 'no teacher: the command names none, adapt.teacher is not set, and no teacher package has been deployed to this device');
  }
  const manifest = parseManifest(JSON.parse(await readFile(join(stored.dir, 'manifest.json'), 'utf8')));
  if (manifestRole(manifest) !== 'teacher') throw new AdaptJobError('AGENT_ADAPT_NO_TEACHER', `${manifest.name}@${manifest.version} in the teacher store is not a teacher package`);
  return { stored, manifest, file: join(stored.dir, defaultModel(manifest).file) };
}

function parseRef(ref: string | undefined): { name: string; version: string } | undefined {
  if (ref === undefined) return undefined;
  const at = ref.indexOf('@');
  return { name: ref.slice(0, at), version: ref.slice(at + 1) };
}
