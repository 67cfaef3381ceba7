import { EventEmitter } from 'node:events';
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, readdir, rename, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  KdEdgeError, fleetTopics, keyIdOf, loadPublicKey, makeEvent, makeOfflineStatus, makeStatus, parseMessage, silentLogger, verifyCommandSignature,
  type ActiveModel, type CommandMessage, type DeployCommand, type EventMessage, type EventState, type FleetTopics, type Hardware, type Logger, TMP_TAG, type BenchMessage, type AdaptMessage,
} from '@kd-edge/core';
import { AdaptJobs, type AdaptHost } from './adapt/adapt-jobs.js';
import { loadOrCreateDeviceKey, type DeviceKey } from './adapt/device-key.js';
import { FrameCapture } from './adapt/frame-capture.js';
import type { AgentConfig } from './config/agent-config.js';
import type { AgentServices } from './commands/agent-services.js';
import type { CommandContext, EventExtra } from './commands/command-context.js';
import { CommandLedger, type LedgerEntry } from './commands/command-ledger.js';
import { benchmark } from './commands/benchmark.js';
import { deploy } from './commands/deploy.js';
import { ping } from './commands/ping.js';
import { rollback } from './commands/rollback.js';
import { AgentError, errorCode } from './errors.js';
import { loadModel, type LoadedModel, type LoadModelOptions } from './model/loaded-model.js';
import { MqttSession } from './mqtt/session.js';
import { Outbox } from './mqtt/outbox.js';
import { locateTrtexec } from './runtime/trtexec-locate.js';
import { RunnerSupervisor, type RunnerFallback } from './runtime/trt-runner/runner-supervisor.js';
import { buildEngine } from './runtime/trtexec-build.js';
import type { Detector } from './serve/detector.js';
import { ModelSlot } from './serve/model-slot.js';
import { DirectoryWatchSource } from './serve/directory-watch-source.js';
import { InferenceService } from './serve/inference-service.js';
import { ReplaySource } from './serve/replay-source.js';
import { SerialSink } from './serve/serial-sink.js';
import { deviceFacts } from './status/device-facts.js';
import { freeBytes } from './transfer/disk-space.js';
import { fetchPackage } from './transfer/fetch-package.js';
import { ModelStore, type StoredVersion } from './store/model-store.js';

/** Options of {@link Agent.start}. */
export interface AgentOptions {
  logger?: Logger;
  /** Reported in the status (default the package version). */
  agentVersion?: string;
  /** Device-fact probes (tests point them at fixtures). */
  facts?: Parameters<typeof deviceFacts>[0];
  /**
   * The architecture and TensorRT version this agent reports in its status (`hardware.arch`, `hardware.tensorrt`)
   * and picks its model file with, instead of the probed ones: the fleet simulator's devices, several agents in one
   * process each with its own. Each field left out is probed (`os.arch()`, trtexec's version). Never set on a device.
   */
  targetFacts?: AgentTargetFacts;
  /** Jitter source of the reconnect backoff. */
  random?: () => number;
  /** Where a host wraps two of the agent's steps (the fleet simulator); never set on a real device. */
  seam?: AgentSeam;
}

/** {@link AgentOptions.targetFacts}: what an agent says it is and picks its files for. */
export interface AgentTargetFacts {
  /** `uname -m` or Node spelling: `aarch64`, `x86_64`, `arm64`, `x64`. */
  arch?: string;
  /** TensorRT version (`8.2.1`), or null for none. */
  tensorrt?: string | null;
}

/**
 * The fleet simulator's seam into an agent: it rewrites benchmark reports (scaling the measured latency to look like
 * another device) and wraps model loading (to inject load failures). The agent itself knows nothing of either.
 */
export interface AgentSeam {
  /** Rewrites every benchmark report before the gates see it and before it is published. */
  report?(bench: BenchMessage): BenchMessage;
  /** Loads a stored version for a deploy or a restore; `load` is the agent's own loader. */
  load?(stored: StoredVersion, purpose: 'deploy' | 'restore', load: () => Promise<LoadedModel>): Promise<LoadedModel>;
}

/** Events of an {@link Agent}: what it published, and failures that did not stop it. */
export interface AgentEvents {
  event: [event: EventMessage];
  bench: [bench: BenchMessage];
  activated: [model: LoadedModel];
  /** An adaptation job's whole state, as published retained on `devices/{id}/adapt`. */
  adapt: [msg: AdaptMessage];
  error: [error: Error];
}

/**
 * kd-agent: keeps one MQTT session to the fleet, answers commands idempotently by id, and keeps the
 * last good model serving whatever arrives. Commands run one at a time; each step is an event.
 * @example
 * const agent = await Agent.start(await loadAgentConfig({ file: 'agent.yaml', env: process.env }));
 * process.on('SIGTERM', () => void agent.stop());
 */
export class Agent extends EventEmitter<AgentEvents> implements AgentServices, AdaptHost {
  readonly deviceId: string;
  readonly topics: FleetTopics;
  /** The serving model's detector; swapped between two inferences on activation. */
  readonly slot = new ModelSlot<Detector>();
  #active: LoadedModel | undefined;
  #queue: Promise<void> = Promise.resolve();
  /** Admission of received commands (ledger look-up, record, enqueue), one message at a time. */
  #admission: Promise<void> = Promise.resolve();
  /** Commands that run beside the queue (ping), until they end. */
  readonly #beside = new Set<Promise<void>>();
  readonly #running = new Set<string>();
  readonly #abort = new AbortController();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #startedAt = Date.now();
  #hardware: Hardware | undefined;
  #service: InferenceService<Detector> | undefined;
  #serial: SerialSink | undefined;
  #capture: FrameCapture | undefined;
  /** On-device adaptation jobs (issue 16), `<dataDir>/adapt`. */
  #adapt: AdaptJobs | undefined;
  #stopped = false;
  /** The supervised TensorRT runner (`runtime.trtRunner`), when configured. */
  #runner: RunnerSupervisor | undefined;

  private constructor(
    readonly config: AgentConfig,
    readonly store: ModelStore,
    /** Teacher packages (issue 16): installed and verified like models, never served; the adaptation job's teacher. */
    readonly teachers: ModelStore,
    readonly ledger: CommandLedger,
    readonly session: MqttSession,
    readonly trustedKeys: readonly KeyObject[],
    /**
     * The device's own key pair (`<dataDir>/keys/`): it signs the device's own adapted packages, which only
     * `verifyOwnPackage` accepts. Never among `trustedKeys`, so no deploy or command from the network verifies with it.
     */
    readonly deviceKey: DeviceKey,
    readonly trtexec: string | undefined,
    private readonly log: Logger,
    private readonly agentVersion: string,
    private readonly options: AgentOptions = {},
  ) {
    super();
    this.deviceId = config.deviceId;
    this.topics = fleetTopics(config.fleet);
  }

  /** Opens the store (repairing it after a crash), loads the active model, connects, and resumes unfinished commands. */
  static async start(config: AgentConfig, options: AgentOptions = {}): Promise<Agent> {
    const log = options.logger ?? silentLogger;
    await mkdir(config.dataDir, { recursive: true });
    const trustedKeys: KeyObject[] = [];
    for (const file of config.keys) {
      try {
        trustedKeys.push(await loadPublicKey(file));
      } catch (err) {
        throw new AgentError('AGENT_CONFIG_INVALID', `keys: ${file}: ${(err as Error).message}`, { cause: err });
      }
    }
    const deviceKey = await loadOrCreateDeviceKey(config.dataDir, { logger: log });
    // The trust boundary of issue 16: a package the device signed itself must never verify as a deploy.
    const own = trustedKeys.findIndex((k) => keyIdOf(k) === deviceKey.keyId);
    if (own >= 0) {
      throw new AgentError(
        'AGENT_CONFIG_INVALID',
        `keys: ${config.keys[own]} is this device's own key ${deviceKey.keyId} (${deviceKey.publicKeyPath}); it signs only the device's own adaptations and is never trusted for deploys or commands`,
      );
    }
    const store = await ModelStore.open(join(config.dataDir, 'store'), { logger: log });
    await adoptLegacyDownloads(join(config.dataDir, 'downloads'), store.downloadsDir);
    const teachers = await ModelStore.open(join(config.dataDir, 'teachers'), { logger: log });
    const ledger = await CommandLedger.open(join(config.dataDir, 'commands'));
    const trtexec = config.runtime.trtexec === false ? undefined
      : await locateTrtexec(config.runtime.trtexec === 'auto' ? {} : { path: config.runtime.trtexec });
    const topics = fleetTopics(config.fleet);
    const outbox = await Outbox.open(join(config.dataDir, 'outbox'), { maxMessages: config.limits.outboxMessages, maxBytes: config.limits.outboxBytes, logger: log });
    const b = config.broker;
    const session = new MqttSession({
      url: b.url,
      clientId: `kd-agent-${config.fleet}-${config.deviceId}`.slice(0, 128),
      username: b.username,
      password: b.password,
      tls: b.ca !== undefined || b.cert !== undefined ? { caFile: b.ca, certFile: b.cert, keyFile: b.key } : undefined,
      protocolVersion: b.protocolVersion,
      sessionExpirySec: b.sessionExpirySec,
      keepaliveSec: b.keepalive,
      will: { topic: topics.status(config.deviceId), payload: JSON.stringify(makeOfflineStatus(config.deviceId)), retain: true },
      subscriptions: [topics.cmd(config.deviceId)],
      backoff: { baseMs: b.reconnectMinMs, maxMs: b.reconnectMaxMs },
      random: options.random,
      outbox,
      logger: log,
    });
    const agent = new Agent(config, store, teachers, ledger, session, trustedKeys, deviceKey, trtexec, log, options.agentVersion ?? '0.1.0', options);
    const probed = await deviceFacts({ trtexec, ...options.facts });
    const t = options.targetFacts;
    agent.#hardware = {
      ...probed,
      ...(t?.arch !== undefined ? { arch: t.arch } : {}),
      ...(t?.tensorrt !== undefined ? { tensorrt: t.tensorrt } : {}),
    };
    await agent.#startRunner();
    await agent.#loadActiveAtStart();
    session.on('message', (topic, payload) => agent.#onMessage(topic, payload));
    // Online is announced only once the command topic is subscribed, so whoever sees it can command the device.
    session.on('connect', () => void agent.#announce());
    session.on('error', (err) => agent.emit('error', err));
    agent.#adapt = await AdaptJobs.open(agent, { root: join(config.dataDir, 'adapt'), logger: log });
    agent.#adapt.on('adapt', (msg) => agent.emit('adapt', msg));
    agent.#adapt.on('error', (err) => agent.emit('error', err));
    // Unfinished commands are queued before the first message can arrive, so a redelivered copy finds them running.
    for (const entry of await ledger.unfinished()) agent.#resume(entry);
    await session.start();
    agent.#startTimers();
    await agent.#startServing();
    // After serving has started, so a resumed job measures the fps it leaves to serving.
    agent.#adapt.resume();
    return agent;
  }

  /** The GPU's name read at start (the engine cache key's), or undefined. */
  get gpuName(): string | undefined {
    return this.#hardware?.gpu ?? undefined;
  }

  /** The model serving now. */
  active(): LoadedModel | undefined {
    return this.#active;
  }

  /** The on-device adaptation jobs (their records, and the one running). */
  get adaptJobs(): AdaptJobs {
    return this.#adapt!;
  }

  /** Resolves when every command received so far has finished (tests and shutdown). */
  async idle(): Promise<void> {
    await this.#admission;
    await Promise.all([this.#queue, ...this.#beside]);
  }

  /** Stops taking commands, lets the running one end at its next step, closes the session cleanly (the retained status says offline). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#abort.abort();
    for (const t of this.#timers) clearInterval(t);
    // A running job's child is stopped at its next step (checkpoint saved); the job resumes at the next start.
    await this.#adapt?.stop().catch((err: unknown) => this.emit('error', err as Error));
    await this.#service?.stop();
    await this.#capture?.close();
    await this.#serial?.close();
    await this.idle().catch(() => undefined);
    await this.session.publish(this.topics.status(this.deviceId), JSON.stringify(makeOfflineStatus(this.deviceId)), { qos: 1, retain: true }).catch(() => undefined);
    await this.session.close();
    await this.slot.close();
    this.#active = undefined;
    await this.#runner?.close();
  }

  /** The supervised TensorRT runner, when `runtime.trtRunner` is configured (its state, pid, fallback). */
  get trtRunner(): RunnerSupervisor | undefined {
    return this.#runner;
  }

  // --- AgentServices ---

  async fetchPackage(cmd: DeployCommand, dest: string, ctx: CommandContext): Promise<void> {
    const session = this.session;
    await fetchPackage(cmd, dest, {
      deviceId: this.deviceId, topics: this.topics, limits: this.config.limits, brokerCa: this.config.broker.ca, signal: ctx.signal,
      onProgress: (bytes) => void ctx.event('downloading', { progress: { bytes, total: cmd.package.size } }).catch(() => undefined),
      channel: {
        publish: (topic, payload) => session.publish(topic, payload, { qos: 1 }),
        subscribe: (topic) => session.subscribe(topic),
        unsubscribe: (topic) => session.unsubscribe(topic),
        onMessage: (handler) => {
          session.on('message', handler);
          return () => void session.off('message', handler);
        },
      },
    });
  }

  uptimeSec(): number {
    return Math.round((Date.now() - this.#startedAt) / 1000);
  }

  transformBench(bench: BenchMessage): BenchMessage {
    return this.options.seam?.report?.(bench) ?? bench;
  }

  load(stored: StoredVersion, purpose: 'deploy' | 'restore' = 'restore'): Promise<LoadedModel> {
    const own = (): Promise<LoadedModel> => loadModel(stored, {
      providers: this.config.runtime.providers, threads: this.config.runtime.threads, conf: this.config.serve.conf, iou: this.config.serve.iou,
      runner: this.#runnerServing(), facts: this.#targetFacts(),
    });
    const seam = this.options.seam?.load;
    return seam === undefined ? own() : seam(stored, purpose, own);
  }

  async activate(loaded: LoadedModel, how: 'activate' | 'rollback'): Promise<void> {
    if (how === 'activate') await this.store.activate(loaded.stored.key);
    else await this.store.rollback();
    // The pointer is durable first: a crash from here on restarts on the new version, never a mix.
    await this.slot.swap(loaded.detector);
    this.#active = loaded;
    this.emit('activated', loaded);
    await this.store.gc().catch((err: unknown) => this.log.warn(`store gc: ${(err as Error).message}`));
    await this.publishStatus();
  }

  /** This agent's own facts for picking a file: what its status reports (never another agent's in the same process). */
  #targetFacts(): LoadModelOptions['facts'] {
    const hw = this.#hardware;
    if (hw === undefined) return {};
    return { arch: hw.arch, tensorrt: hw.tensorrt ?? null };
  }

  // --- AdaptHost ---

  async publishAdapt(msg: AdaptMessage): Promise<void> {
    await this.session.publish(this.topics.adapt(this.deviceId), JSON.stringify(msg), { qos: 1, retain: true });
  }

  captureInfo(): { dir: string; frames: number } | undefined {
    return this.#capture === undefined ? undefined : { dir: this.#capture.dir, frames: this.#capture.stats().count };
  }

  servingStats(): { fps: number; frames: number } | undefined {
    if (this.#service === undefined) return undefined;
    const { fps, frames } = this.#service.stats;
    return { fps, frames };
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.then(() => undefined, () => undefined);
    return run;
  }

  async publishBench(msg: BenchMessage): Promise<void> {
    this.emit('bench', msg);
    await this.session.publish(this.topics.bench(this.deviceId), JSON.stringify(msg), { qos: 1 });
  }

  async publishStatus(): Promise<void> {
    if (this.#stopped) return;
    const status = makeStatus({
      deviceId: this.deviceId,
      online: true,
      agentVersion: this.agentVersion,
      hardware: this.#hardware,
      activeModel: this.#describe(this.#active?.stored, this.#active),
      previousModel: this.#describe(this.store.previous() ?? undefined),
      freeDiskMb: Math.round((await freeBytes(this.config.dataDir).catch(() => 0)) / 2 ** 20),
      ...(this.#service ? { serving: { fps: this.#service.stats.fps, frames: this.#service.stats.frames, ...this.#captureStatus() } } : {}),
      deviceKey: { keyId: this.deviceKey.keyId, publicKeyPem: this.deviceKey.publicKeyPem },
    });
    await this.session.publish(this.topics.status(this.deviceId), JSON.stringify(status), { qos: 1, retain: true });
  }

  #resolveOnline: () => void = () => {};
  /** Resolves at the first online status after start (tests, and callers that want the device reachable). */
  readonly online: Promise<void> = new Promise((resolve) => {
    this.#resolveOnline = resolve;
  });

  async #announce(): Promise<void> {
    try {
      await this.session.subscribe(this.topics.cmd(this.deviceId));
      await this.publishStatus();
      this.#resolveOnline();
    } catch (err) {
      this.emit('error', err as Error);
    }
  }

  // --- commands ---

  #onMessage(topic: string, payload: Buffer): void {
    if (topic !== this.topics.cmd(this.deviceId)) return;
    // One message at a time from the ledger look-up to the enqueue: two copies of an id, however close, cannot both run.
    const admitted = this.#admission.then(() => this.#receive(payload));
    this.#admission = admitted.then(() => undefined, () => undefined);
    void admitted.then((answer) => answer?.(), (err: unknown) => this.emit('error', err as Error));
  }

  /**
   * Checks a received command and, when it is to run, records it and queues it. Returns the answer to publish when it
   * is refused or a repeat (published after admission, so a slow broker does not hold up the next message).
   */
  async #receive(payload: Buffer): Promise<(() => Promise<void>) | undefined> {
    let raw: unknown;
    let cmd: CommandMessage;
    const answer = (event: EventMessage) => async (): Promise<void> => {
      await this.#publishEvent(event).catch((err: unknown) => void this.emit('error', err as Error));
    };
    try {
      cmd = parseMessage('cmd', payload);
      raw = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      // Answer what can be attributed; change nothing.
      const guess = attribution(payload);
      return answer(makeEvent({ deviceId: this.deviceId, ...guess, state: 'failed', code: errorCode(err), message: (err as Error).message.slice(0, 4000) }));
    }
    if (cmd.deviceId !== this.deviceId) {
      return answer(makeEvent({ deviceId: this.deviceId, commandId: cmd.id, command: cmd.command, state: 'failed', code: 'AGENT_WRONG_DEVICE', message: `command for device ${cmd.deviceId} reached ${this.deviceId}` }));
    }
    if (cmd.signature !== undefined) {
      try {
        verifyCommandSignature(raw, this.trustedKeys);
      } catch (err) {
        return answer(makeEvent({ deviceId: this.deviceId, commandId: cmd.id, command: cmd.command, state: 'failed', code: errorCode(err), message: (err as Error).message }));
      }
    }
    const { entry, fresh } = await this.ledger.admit(cmd.id, cmd.command, raw);
    if (!fresh && (entry.final || this.#running.has(cmd.id))) {
      // A repeat (QoS 1 redelivery, a fleet retry): answered with what is known, not redone.
      const last = entry.last ?? { state: 'accepted' };
      return answer(makeEvent({ ...(last as object), deviceId: this.deviceId, commandId: cmd.id, command: cmd.command, state: last.state as EventState, repeat: true, ts: undefined }));
    }
    // New, or recorded but not running (its run ended without a final event): run it.
    this.#enqueue(cmd, raw);
    return undefined;
  }

  #resume(entry: LedgerEntry): void {
    let cmd: CommandMessage;
    try {
      cmd = parseMessage('cmd', entry.message as object);
    } catch {
      return;
    }
    this.log.info(`resuming command ${cmd.id} (${cmd.command}) cut short by a restart`);
    this.#enqueue(cmd, entry.message, entry.last);
  }

  #enqueue(cmd: CommandMessage, raw: unknown, resumedFrom?: Record<string, unknown>): void {
    this.#running.add(cmd.id);
    const job = async (): Promise<void> => {
      const ctx = this.#context(cmd, resumedFrom);
      try {
        if (this.#stopped) return;
        await ctx.event('accepted');
        await this.#run(cmd, raw, ctx);
      } catch (err) {
        if (!(err instanceof KdEdgeError)) this.emit('error', err as Error);
        if (this.#stopped) return; // left unfinished in the ledger: resumed at the next start
        await ctx.event('failed', { code: errorCode(err), message: (err as Error).message.slice(0, 4000) }).catch(() => undefined);
      } finally {
        this.#running.delete(cmd.id);
        await this.ledger.prune().catch(() => undefined);
      }
    };
    if (cmd.command === 'ping' || cmd.command === 'adapt-cancel' || cmd.command === 'adapt-upload') {
      // A ping reads and changes nothing a running command holds: answered at once, even during a long download.
      // An adapt-cancel or adapt-upload touches only an adaptation job, which runs outside the queue: neither waits behind a deploy.
      const p = job();
      this.#beside.add(p);
      void p.finally(() => this.#beside.delete(p));
    } else {
      this.#queue = this.#queue.then(job);
    }
  }

  async #run(cmd: CommandMessage, raw: unknown, ctx: CommandContext): Promise<void> {
    switch (cmd.command) {
      case 'ping':
        return ping(this, ctx);
      case 'deploy':
        return deploy(this, cmd, raw, ctx);
      case 'rollback':
        return rollback(this, cmd, ctx);
      case 'benchmark':
        return benchmark(this, cmd, ctx);
      case 'adapt': {
        // Admission only: the job runs on outside the queue (hours of training must not hold deploys and rollbacks).
        const answer = await this.#adapt!.admit(cmd);
        return ctx.event('succeeded', { result: { ...answer } });
      }
      case 'adapt-cancel': {
        const answer = await this.#adapt!.cancel(cmd.jobId);
        return ctx.event('succeeded', { result: { ...answer } });
      }
      case 'adapt-upload': {
        // A fleet's pull: the job's device-signed package, PUT to the one-time URL in the command (docs/adaptation.md).
        const https = cmd.url.startsWith('https:');
        const sent = await this.#adapt!.upload(cmd.jobId, cmd.url, { signal: ctx.signal, caFile: https ? this.config.broker.ca : undefined });
        return ctx.event('succeeded', { result: sent });
      }
    }
  }

  #context(cmd: CommandMessage, resumedFrom?: Record<string, unknown>): CommandContext {
    return {
      signal: this.#abort.signal,
      resumedFrom,
      event: async (state: EventState, extra: EventExtra = {}) => {
        const event = makeEvent({ deviceId: this.deviceId, commandId: cmd.id, command: cmd.command, state, ...extra });
        await this.ledger.record(cmd.id, event);
        await this.#publishEvent(event);
      },
    };
  }

  async #publishEvent(event: EventMessage): Promise<void> {
    this.emit('event', event);
    await this.session.publish(this.topics.events(this.deviceId), JSON.stringify(event), { qos: 1 });
  }

  // --- the TensorRT runner (issue 17) ---

  /** `kd-trt-<tag>-`: the prefix of this data dir's shared-memory files, so a later start removes only its own. */
  #shmPrefix(): string {
    return `kd-trt-${createHash('sha256').update(this.config.dataDir).digest('hex').slice(0, 8)}-`;
  }

  /** Removes stale shared-memory files of this data dir, starts the runner and falls back to ONNX Runtime when it gives up. */
  async #startRunner(): Promise<void> {
    const c = this.config.runtime.trtRunner;
    if (c === undefined) return;
    await this.#removeStaleShm(c.shmDir);
    const runner = new RunnerSupervisor({ command: c.command, maxCrashes: c.maxCrashes, crashWindowMs: c.crashWindowSec * 1000, logger: this.log });
    this.#runner = runner;
    runner.on('fallback', (fallback) => void this.exclusive(() => this.#fallBack(fallback)).catch((err: unknown) => this.emit('error', err as Error)));
    runner.on('reloadError', ({ error }) => this.log.error(`trt-runner: ${error.message}`));
    try {
      await runner.start();
      this.log.info(`trt-runner: ${runner.hello?.runner} (${runner.hello?.impl} ${runner.hello?.version}) up, pid ${runner.pid}`);
    } catch (err) {
      // The fallback event says why; ONNX Runtime serves.
      this.log.error(`trt-runner: did not start: ${(err as Error).message}`);
    }
  }

  /** Files `<prefix><pid>-<hex>` in `dir` whose process is gone: left by a killed agent of this data dir. */
  async #removeStaleShm(dir: string): Promise<void> {
    const prefix = this.#shmPrefix();
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const m = name.startsWith(prefix) ? /^(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length)) : null;
      if (m === null || alive(Number(m[1]))) continue;
      await unlink(join(dir, name)).catch(() => undefined);
      this.log.info(`trt-runner: removed ${join(dir, name)}, left by a stopped agent`);
    }
  }

  #runnerServing(): LoadModelOptions['runner'] {
    const runner = this.#runner;
    const c = this.config.runtime.trtRunner;
    if (runner === undefined || c === undefined || runner.state !== 'ready') return undefined;
    return {
      supervisor: runner,
      shmDir: c.shmDir,
      shmName: () => `${this.#shmPrefix()}${process.pid}-${randomBytes(6).toString('hex')}`,
      engine: async (stored, manifest, onnxFile) => {
        // The stand-in loads ONNX; the native runner the engine trtexec builds from the package's plan (engine cache).
        if (runner.hello?.impl === 'onnxruntime-standin') return onnxFile;
        if (this.trtexec === undefined || manifest.tensorrt === undefined) return undefined;
        const built = await buildEngine({
          trtexec: this.trtexec, packageDir: stored.dir, packageSha256: stored.info.sha256,
          gpu: this.gpuName ?? 'unknown-gpu', cacheDir: join(this.config.dataDir, 'engines'),
        });
        return built.enginePath;
      },
      onError: (err) => this.log.warn(err.message),
    };
  }

  /** The runner gave up: an event naming why, then the active version on ONNX Runtime through the slot's swap. */
  async #fallBack(fallback: RunnerFallback): Promise<void> {
    if (this.#stopped) return;
    const active = this.#active;
    await this.#publishEvent(makeEvent({
      deviceId: this.deviceId, state: 'failed', code: fallback.code, message: fallback.reason.slice(0, 4000),
      result: { fallback: 'onnxruntime', active: active ? `${active.manifest.name}@${active.manifest.version}` : null },
    })).catch((err: unknown) => this.emit('error', err as Error));
    if (active === undefined || active.serving !== 'tensorrt-runner' || this.#stopped) return;
    // The runner is 'failed' now, so this load is ONNX Runtime's.
    const loaded = await this.load(active.stored, 'restore');
    await this.slot.swap(loaded.detector);
    this.#active = loaded;
    this.emit('activated', loaded);
    await this.publishStatus();
  }

  // --- start-up ---

  /** Loads the store's current version; if it does not load, falls back to the previous one, then to none. */
  async #loadActiveAtStart(): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const current = this.store.current();
      if (current === null) return;
      try {
        const loaded = await this.load(current);
        await this.slot.swap(loaded.detector);
        this.#active = loaded;
        return;
      } catch (err) {
        this.log.error(`active version ${current.key} does not load: ${(err as Error).message}`);
        this.emit('error', err as Error);
        if (this.store.previous() === null || attempt === 1) return;
        await this.store.rollback();
      }
    }
  }

  /** The frame capture's figures for the status's `serving` (extra fields are allowed there), when it runs. */
  #captureStatus(): { capture?: { frames: number; bytes: number; kept: number; dropped: number } } {
    if (this.#capture === undefined) return {};
    const s = this.#capture.stats();
    const dropped = Object.values(s.dropped).reduce((a, b) => a + b, 0);
    return { capture: { frames: s.count, bytes: s.bytes, kept: s.kept, dropped } };
  }

  /** Opens the frame capture when the configuration enables it; a folder that cannot be opened leaves serving without it. */
  async #openCapture(): Promise<FrameCapture | undefined> {
    const c = this.config.capture;
    if (!c.enabled) return undefined;
    try {
      const capture = await FrameCapture.open({
        dir: c.dir ?? join(this.config.dataDir, 'capture'),
        everyN: c.everyN, uncertainLow: c.uncertainLow, uncertainHigh: c.uncertainHigh, uncertainMinIntervalMs: c.uncertainMinIntervalMs,
        maxFrames: c.maxFrames, maxBytes: c.maxBytes, reserveDiskBytes: this.config.limits.reserveDiskBytes, logger: this.log,
      });
      const s = capture.stats();
      this.log.info(`capture: keeping frames in ${capture.dir} (${s.count} there, ${s.bytes} bytes; at most ${c.maxFrames} frames, ${c.maxBytes} bytes)`);
      return capture;
    } catch (err) {
      // Logged, not emitted: during start nobody listens yet, and an unheard 'error' event would throw.
      this.log.error(`capture: cannot open ${c.dir ?? join(this.config.dataDir, 'capture')}: ${(err as Error).message}; serving without it`);
      return undefined;
    }
  }

  /** Starts the inference loop when a frame source is configured; it serves whatever the slot holds. */
  async #startServing(): Promise<void> {
    const serve = this.config.serve;
    if (serve.source === undefined) {
      if (this.config.capture.enabled) this.log.warn('capture: enabled, but serve.source is not set: there are no frames to capture');
      return;
    }
    const source = serve.source.dir !== undefined
      ? new DirectoryWatchSource({ dir: serve.source.dir })
      : new ReplaySource({ dir: serve.source.replay!, fps: serve.source.fps, loop: serve.source.loop });
    if (serve.serial !== undefined) {
      this.#serial = new SerialSink({ path: serve.serial.path, baudRate: serve.serial.baud, logger: this.log });
      this.#serial.start();
    }
    const topic = this.topics.detections(this.deviceId);
    this.#service = new InferenceService({
      source, slot: this.slot, deviceId: this.deviceId, maxPerSecond: serve.detectionsPerSecond, serial: this.#serial,
      detect: { conf: serve.conf, iou: serve.iou }, logger: this.log,
      publish: async (message) => {
        await this.session.publish(topic, JSON.stringify(message), { qos: 0 });
      },
    });
    this.#service.on('frameError', ({ error }) => this.log.warn(`frame: ${error.message}`));
    this.#capture = await this.#openCapture();
    const capture = this.#capture;
    if (capture !== undefined) this.#service.on('frame', (event) => void capture.offer(event));
    void this.#service.run().catch((err: unknown) => this.emit('error', err as Error));
  }

  #startTimers(): void {
    const status = setInterval(() => void this.publishStatus().catch(() => undefined), this.config.statusIntervalSec * 1000);
    const heartbeat = process.env.KD_AGENT_HEARTBEAT ?? join(this.config.dataDir, 'heartbeat');
    const beat = async (): Promise<void> => {
      const now = new Date();
      await utimes(heartbeat, now, now).catch(() => writeFile(heartbeat, ''));
    };
    void beat().catch(() => undefined);
    const hb = setInterval(() => void beat().catch(() => undefined), 30_000);
    status.unref();
    hb.unref();
    this.#timers.push(status, hb);
    if (this.config.adapt.schedule !== undefined) {
      // Scheduled adaptation jobs (adapt.schedule): checked every minute; admission refuses what it must.
      const schedule = setInterval(() => void this.#adapt?.tick().catch((err: unknown) => this.emit('error', err as Error)), 60_000);
      schedule.unref();
      this.#timers.push(schedule);
    }
  }

  #describe(stored: StoredVersion | undefined, loaded?: LoadedModel): ActiveModel | null {
    if (stored === undefined) return null;
    return {
      name: stored.info.name,
      version: stored.info.version,
      sha256: stored.info.sha256,
      ...(loaded ? {
        precision: loaded.model.precision, file: loaded.model.file, runtime: loaded.tensorrt ? 'tensorrt' as const : 'onnxruntime' as const,
        executionProvider: loaded.runtime.executionProvider,
        // Extra field (the schema keeps it): the path that serves, the runner or ONNX Runtime in-process.
        serving: loaded.serving,
      } : {}),
    };
  }
}

/** Whether process `pid` exists (EPERM: it does, under another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The id and command of a message that failed validation, when they can be read (else null). */
function attribution(payload: Buffer): { commandId: string | null; command: string | null } {
  try {
    const j = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    const id = typeof j.id === 'string' && /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(j.id) ? j.id : null;
    const command = typeof j.command === 'string' && j.command.length <= 64 ? j.command : null;
    return { commandId: id, command };
  } catch {
    return { commandId: null, command: null };
  }
}

/**
 * Earlier agents downloaded into `<dataDir>/downloads`, beside the store's own folder: partial downloads there
 * move into the store's (so they still resume), temporary files are dropped, and the old folder goes.
 */
async function adoptLegacyDownloads(legacy: string, downloads: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(legacy);
  } catch {
    return;
  }
  for (const name of names) {
    if (name.includes(TMP_TAG)) continue;
    await rename(join(legacy, name), join(downloads, name)).catch(() => undefined);
  }
  await rm(legacy, { recursive: true, force: true });
}
