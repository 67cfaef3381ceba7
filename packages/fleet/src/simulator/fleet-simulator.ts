import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from '@kd-edge/core/util';
import type { Agent } from '@kd-edge/edge-agent';
import { AgentPool, type AgentPoolEvents, type AgentPoolOptions } from './agent-pool.js';
import { ChildHost } from './child-host.js';
import { planDevices, type ProfileChoice, type SimDeviceSpec } from './device-plan.js';
import type { HardwareProfileName } from './hardware-profiles.js';
import { writeProfileFacts } from './profile-facts.js';
import type { SimLogLevel } from './simulator-ipc.js';
import { SimulatorError } from './simulator-error.js';

/** Options of {@link FleetSimulator.start}. */
export interface SimulatorOptions {
  /** How many devices. */
  devices: number;
  /** Hardware profile of every device, or `mix` (nano, orin, x86 in turn; the default). */
  profile?: ProfileChoice;
  /** The fleet's broker, e.g. mqtt://127.0.0.1:1883. */
  broker: string;
  /** Fleet id (default `default`). */
  fleet?: string;
  /** The fleet's public key file(s) the agents trust for packages and commands. */
  keys: string | readonly string[];
  /** Root of the devices' data folders (`<root>/<deviceId>`); reused by the next run with the same ids. */
  root: string;
  /** Share of deploys that fail on purpose with AGENT_INJECTED_FAULT, 0..1 (default 0). */
  failRate?: number;
  /** Child processes sharing the agents; 1 (the default) runs them all in this process. */
  processes?: number;
  /** MQTT version: 4 (3.1.1, the default, what the embedded aedes speaks) or 5. */
  protocolVersion?: 4 | 5;
  /** Benchmark warmup and iterations of each agent (default 2 and 10, cheap enough for 100 agents). */
  warmup?: number;
  iterations?: number;
  /** Seed of every per-device draw (default `kd-sim`). */
  seed?: string | number;
  /** Pause between agent starts in each process (default 20 ms). */
  staggerMs?: number;
  /** Connect agents through cuttable relays so {@link FleetSimulator.kill} works (tests; mqtt:// and ws:// only). */
  killable?: boolean;
  /** ONNX Runtime threads per agent (default 1). */
  threads?: number;
  /** Overrides of the profiles' latency factors. */
  latencyFactors?: Partial<Record<HardwareProfileName, number>>;
  /** Device id prefix (default `sim`: `sim-nano-001`). */
  idPrefix?: string;
  username?: string;
  password?: string;
  ca?: string;
  /** How long start() waits for every device's online status; 0 to not wait (default 60 s). */
  onlineTimeoutMs?: number;
  logger?: Logger;
  /** Lowest level children forward to `logger` (default info when there is a logger). */
  logLevel?: SimLogLevel;
  /** Child entry and node flags (defaults: simulator-child next to this module, `process.execArgv`). */
  child?: { entry?: string; execArgv?: string[] };
}

/** Events of a {@link FleetSimulator}: its agents' (whichever process runs them), and a child that died. */
export interface FleetSimulatorEvents extends AgentPoolEvents {
  childExit: [pid: number | undefined, code: number | null, signal: NodeJS.Signals | null];
}

type Host = AgentPool | ChildHost;

/**
 * Runs N real kd-agents against a fleet's broker, each with its own id, data folder and simulated hardware
 * profile (scaled benchmark figures, Jetson facts and tegrastats), optionally failing a share of deploys, in this
 * process or spread over child processes.
 * @example
 * const sim = await FleetSimulator.start({ devices: 100, profile: 'mix', broker: 'mqtt://127.0.0.1:1883', keys: 'keys/fleet.pub', root: '/tmp/sim' });
 * await sim.stop();
 */
export class FleetSimulator extends EventEmitter<FleetSimulatorEvents> {
  /** Devices that announced themselves online since start (or their last restart) and were not killed or stopped. */
  readonly online = new Set<string>();
  readonly #hostOf = new Map<string, Host>();
  #stopped = false;

  private constructor(readonly devices: readonly SimDeviceSpec[], private readonly hosts: readonly Host[]) {
    super();
    for (const host of hosts) {
      for (const spec of host.specs) this.#hostOf.set(spec.deviceId, host);
      host.on('online', (id) => {
        this.online.add(id);
        this.emit('online', id);
      });
      host.on('bench', (b) => this.emit('bench', b));
      host.on('agentError', (id, err) => this.emit('agentError', id, err));
      if (host instanceof ChildHost) host.on('exit', (code, signal) => this.emit('childExit', host.pid, code, signal));
    }
  }

  /** Plans the devices, starts them (staggered) and, unless `onlineTimeoutMs` is 0, waits until all are online. */
  static async start(options: SimulatorOptions): Promise<FleetSimulator> {
    const o = checkOptions(options);
    const specs = planDevices(options.devices, options.profile ?? 'mix', options.root, options.idPrefix ?? 'sim');
    const factsDir = join(options.root, '.profiles');
    await writeProfileFacts(factsDir);
    const poolOptions: AgentPoolOptions = {
      fleet: options.fleet ?? 'default',
      brokerUrl: options.broker,
      protocolVersion: options.protocolVersion ?? 4,
      keys: typeof options.keys === 'string' ? [options.keys] : [...options.keys],
      ...(options.username !== undefined ? { username: options.username } : {}),
      ...(options.password !== undefined ? { password: options.password } : {}),
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      warmup: options.warmup ?? 2,
      iterations: options.iterations ?? 10,
      failRate: options.failRate ?? 0,
      seed: String(options.seed ?? 'kd-sim'),
      staggerMs: options.staggerMs ?? 20,
      killable: options.killable ?? false,
      threads: options.threads ?? 1,
      factsDir,
      ...(options.latencyFactors !== undefined ? { latencyFactors: options.latencyFactors } : {}),
      reconnectMinMs: 500,
      reconnectMaxMs: 30_000,
    };
    const k = Math.min(o.processes, specs.length);
    let hosts: Host[];
    if (k <= 1) {
      hosts = [new AgentPool(poolOptions, specs, options.logger)];
    } else {
      // Round-robin shares, so that every child runs a mix of the profiles.
      const shares: SimDeviceSpec[][] = Array.from({ length: k }, () => []);
      specs.forEach((s, i) => shares[i % k]!.push(s));
      hosts = shares.map((share) => new ChildHost(poolOptions, share, {
        entry: options.child?.entry, execArgv: options.child?.execArgv, logger: options.logger, logLevel: options.logLevel,
      }));
    }
    const sim = new FleetSimulator(specs, hosts);
    try {
      const started = await Promise.allSettled(hosts.map((h) => h.start()));
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      if (o.onlineTimeoutMs > 0) await sim.#waitOnline(o.onlineTimeoutMs);
    } catch (err) {
      await sim.stop();
      throw err;
    }
    return sim;
  }

  /** Process ids of the child processes (empty when the agents run in this process). */
  get processIds(): number[] {
    return this.hosts.flatMap((h) => (h instanceof ChildHost && h.pid !== undefined ? [h.pid] : []));
  }

  /** The agent object of a device run in this process (undefined with child processes, or once killed). */
  agent(deviceId: string): Agent | undefined {
    const host = this.#host(deviceId);
    return host instanceof AgentPool ? host.agent(deviceId) : undefined;
  }

  /** Ends a device like a crash (no clean offline: the broker publishes its last will). Needs `killable`. */
  async kill(deviceId: string): Promise<void> {
    const host = this.#host(deviceId);
    this.online.delete(deviceId);
    await host.kill(deviceId);
  }

  /** Starts a killed device again on its data folder. */
  async restart(deviceId: string): Promise<void> {
    await this.#host(deviceId).restart(deviceId);
  }

  /** Stops every agent cleanly (each publishes its offline status) and ends the child processes. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.allSettled(this.hosts.map((h) => h.stop()));
    this.online.clear();
  }

  #host(deviceId: string): Host {
    const host = this.#hostOf.get(deviceId);
    if (host === undefined) throw new SimulatorError('FLEET_SIM_UNKNOWN_DEVICE', `no simulated device ${deviceId}`);
    if (this.#stopped) throw new SimulatorError('FLEET_SIM_STOPPED', 'the simulator is stopped');
    return host;
  }

  async #waitOnline(timeoutMs: number): Promise<void> {
    if (this.online.size >= this.devices.length) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('online', check);
        const missing = this.devices.filter((d) => !this.online.has(d.deviceId)).map((d) => d.deviceId);
        reject(new SimulatorError('FLEET_SIM_ONLINE_TIMEOUT', `${missing.length} of ${this.devices.length} simulated devices not online after ${timeoutMs} ms: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`));
      }, timeoutMs);
      const check = (): void => {
        if (this.online.size < this.devices.length) return;
        clearTimeout(timer);
        this.off('online', check);
        resolve();
      };
      this.on('online', check);
    });
  }
}

function checkOptions(o: SimulatorOptions): { processes: number; onlineTimeoutMs: number } {
  if (!Number.isInteger(o.devices) || o.devices < 1 || o.devices > 100_000) throw new RangeError(`devices must be an integer 1..100000, got ${String(o.devices)}`);
  if (typeof o.broker !== 'string' || !/^(mqtts?|wss?):\/\/.+/.test(o.broker)) throw new RangeError(`broker must be an mqtt://, mqtts://, ws:// or wss:// URL, got ${String(o.broker)}`);
  const keys = typeof o.keys === 'string' ? [o.keys] : o.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.some((k) => typeof k !== 'string' || k === '')) throw new RangeError('keys must name at least one public key file');
  if (typeof o.root !== 'string' || o.root === '') throw new RangeError('root must be a folder path');
  const failRate = o.failRate ?? 0;
  if (typeof failRate !== 'number' || !(failRate >= 0 && failRate <= 1)) throw new RangeError(`failRate must be a number 0..1, got ${String(o.failRate)}`);
  const processes = o.processes ?? 1;
  if (!Number.isInteger(processes) || processes < 1 || processes > 256) throw new RangeError(`processes must be an integer 1..256, got ${String(o.processes)}`);
  if (o.protocolVersion !== undefined && o.protocolVersion !== 4 && o.protocolVersion !== 5) throw new RangeError(`protocolVersion must be 4 or 5, got ${String(o.protocolVersion)}`);
  for (const [name, v, min] of [['warmup', o.warmup, 0], ['iterations', o.iterations, 1], ['staggerMs', o.staggerMs, 0], ['threads', o.threads, 0]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new RangeError(`${name} must be an integer ≥ ${min}, got ${String(v)}`);
  }
  const onlineTimeoutMs = o.onlineTimeoutMs ?? 60_000;
  if (typeof onlineTimeoutMs !== 'number' || !(onlineTimeoutMs >= 0)) throw new RangeError(`onlineTimeoutMs must be ≥ 0, got ${String(o.onlineTimeoutMs)}`);
  return { processes, onlineTimeoutMs };
}
