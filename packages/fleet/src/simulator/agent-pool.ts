import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { silentLogger, type Logger } from '@kd-edge/core/util';
import type { BenchMessage } from '@kd-edge/core/protocol';
import { Agent, AgentError, validateAgentConfig, type AgentSeam } from '@kd-edge/edge-agent';
import type { SimDeviceSpec } from './device-plan.js';
import { HARDWARE_PROFILES, deviceLatencyFactor, profileBenchTransform, type HardwareProfileName } from './hardware-profiles.js';
import { seededRandom } from './seeded-random.js';
import { SimulatorError } from './simulator-error.js';
import { TcpLink } from './tcp-link.js';

/** How a pool runs its agents; plain data, so a parent process can hand it to a child. */
export interface AgentPoolOptions {
  fleet: string;
  brokerUrl: string;
  /** 4 for the embedded aedes (MQTT 3.1.1 only), 5 for Mosquitto or EMQX. */
  protocolVersion: 4 | 5;
  /** Public key files the agents trust (the fleet's). */
  keys: string[];
  username?: string;
  password?: string;
  /** CA file for mqtts:// and wss://. */
  ca?: string;
  warmup: number;
  iterations: number;
  /** Share of deploys each agent fails on purpose (AGENT_INJECTED_FAULT). */
  failRate: number;
  /** Seeds every per-device draw (factor jitter, tegrastats figures, injected faults, reconnect jitter). */
  seed: string;
  /** Pause between two agent starts. */
  staggerMs: number;
  /** Connect each agent through a {@link TcpLink} so that kill() can cut it (plain mqtt:// and ws:// only). */
  killable: boolean;
  /** ONNX Runtime threads per agent (1 keeps a hundred agents from fighting over the cores). */
  threads: number;
  /** Folder with the profiles' fake Jetson fact files (see writeProfileFacts). */
  factsDir: string;
  latencyFactors?: Partial<Record<HardwareProfileName, number>>;
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

/** One benchmark of a simulated device: what ONNX Runtime measured here and what the device reported. */
export interface SimBench {
  deviceId: string;
  profile: HardwareProfileName;
  factor: number;
  measured: BenchMessage;
  reported: BenchMessage;
}

/** Events of an {@link AgentPool} (and of the simulator, which forwards them). */
export interface AgentPoolEvents {
  online: [deviceId: string];
  bench: [bench: SimBench];
  agentError: [deviceId: string, error: Error];
}

interface Running {
  spec: SimDeviceSpec;
  agent: Agent | undefined;
  link: TcpLink | undefined;
}


/**
 * Runs simulated kd-agents in this process: each a real {@link Agent} with its own device id, data folder and
 * seeded profile, started one after another `staggerMs` apart.
 */
export class AgentPool extends EventEmitter<AgentPoolEvents> {
  readonly #running = new Map<string, Running>();
  #stopped = false;

  constructor(
    private readonly options: AgentPoolOptions,
    readonly specs: readonly SimDeviceSpec[],
    private readonly logger: Logger = silentLogger,
  ) {
    super();
    if (options.killable && !/^(mqtt|ws):\/\//.test(options.brokerUrl)) {
      throw new RangeError(`killable needs a plain mqtt:// or ws:// broker URL (a relay breaks TLS host checks), got ${options.brokerUrl}`);
    }
  }

  /** Starts every agent, staggered; resolves once each has started (not necessarily connected: see {@link online}). */
  async start(): Promise<void> {
    for (const [i, spec] of this.specs.entries()) {
      if (this.#stopped) throw new SimulatorError('FLEET_SIM_STOPPED', 'the simulator was stopped while starting');
      if (i > 0 && this.options.staggerMs > 0) await delay(this.options.staggerMs);
      await this.#startOne(spec);
    }
  }

  /** Resolves when every running agent has announced itself online once. */
  async online(): Promise<void> {
    await Promise.all([...this.#running.values()].map((r) => r.agent?.online));
  }

  /** The agent of a device, while it runs (tests reach into it). */
  agent(deviceId: string): Agent | undefined {
    return this.#running.get(deviceId)?.agent;
  }

  /** Ends a device as a crash would: its connection is cut with no DISCONNECT (the broker fires its last will), then it stops. */
  async kill(deviceId: string): Promise<void> {
    const r = this.#get(deviceId);
    if (r.link === undefined) throw new SimulatorError('FLEET_SIM_NOT_KILLABLE', `${deviceId}: start the simulator with killable: true to kill devices`);
    const agent = r.agent;
    if (agent === undefined) return;
    r.agent = undefined;
    r.link.cut();
    // Closing the session first makes stop()'s own offline status fail instead of waiting in the outbox for the next start.
    await agent.session.close({ timeoutMs: 0 });
    await agent.stop();
    await r.link.close();
    r.link = undefined;
  }

  /** Starts a killed device again on its data folder (it resumes its model and unfinished commands). */
  async restart(deviceId: string): Promise<void> {
    const r = this.#get(deviceId);
    if (r.agent !== undefined) return;
    await this.#startOne(r.spec);
  }

  /** Stops every agent cleanly: each publishes its offline status and disconnects. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const all = [...this.#running.values()];
    await Promise.allSettled(all.map(async (r) => {
      const agent = r.agent;
      r.agent = undefined;
      await agent?.stop();
      await r.link?.close();
      r.link = undefined;
    }));
  }

  #get(deviceId: string): Running {
    const r = this.#running.get(deviceId);
    if (r === undefined) throw new SimulatorError('FLEET_SIM_UNKNOWN_DEVICE', `no simulated device ${deviceId}`);
    return r;
  }

  async #startOne(spec: SimDeviceSpec): Promise<void> {
    const o = this.options;
    const id = spec.deviceId;
    const profile = HARDWARE_PROFILES[spec.profile];
    const factor = deviceLatencyFactor(profile, seededRandom(`${o.seed}:${id}:factor`), o.latencyFactors?.[spec.profile]);
    let link: TcpLink | undefined;
    let url = o.brokerUrl;
    if (o.killable) {
      const u = new URL(o.brokerUrl);
      link = await TcpLink.open(u.hostname, Number(u.port || (u.protocol === 'ws:' ? 80 : 1883)));
      url = `${u.protocol}//127.0.0.1:${link.port}${u.protocol === 'ws:' ? u.pathname + u.search : ''}`;
    }
    const running: Running = this.#running.get(id) ?? { spec, agent: undefined, link: undefined };
    running.link = link;
    this.#running.set(id, running);
    const transform = profileBenchTransform(profile, factor, seededRandom(`${o.seed}:${id}:tegrastats`));
    const facts = profile.jetson
      ? { deviceTreeModel: join(o.factsDir, spec.profile, 'device-tree-model'), tegraRelease: join(o.factsDir, spec.profile, 'nv_tegra_release') }
      // Not the host's files: a simulator run on a Jetson must not make its x86 devices Jetsons.
      : { deviceTreeModel: join(o.factsDir, 'absent'), tegraRelease: join(o.factsDir, 'absent') };
    try {
      const config = validateAgentConfig({
        fleet: o.fleet, deviceId: id, dataDir: spec.dataDir, keys: o.keys,
        broker: {
          url, protocolVersion: o.protocolVersion, reconnectMinMs: o.reconnectMinMs, reconnectMaxMs: o.reconnectMaxMs,
          ...(o.username !== undefined ? { username: o.username } : {}),
          ...(o.password !== undefined ? { password: o.password } : {}),
          ...(o.ca !== undefined ? { ca: o.ca } : {}),
        },
        runtime: { trtexec: false, threads: o.threads },
        benchmark: { warmup: o.warmup, iterations: o.iterations },
      }, `simulated device ${id}`);
      const log = prefixed(this.logger, id);
      const agent = await Agent.start(config, {
        logger: log,
        facts,
        // The profile's architecture and TensorRT version, not this host's: reported in the status and picking the file.
        targetFacts: { arch: profile.arch, tensorrt: profile.tensorrt ?? null },
        random: seededRandom(`${o.seed}:${id}:backoff`),
        seam: {
          report: (measured) => {
            const reported = transform(measured);
            this.emit('bench', { deviceId: id, profile: spec.profile, factor, measured, reported });
            return reported;
          },
          ...(o.failRate > 0 ? { load: injectLoadFailures(o.failRate, seededRandom(`${o.seed}:${id}:faults`)) } : {}),
        },
      });
      agent.on('error', (err) => this.emit('agentError', id, err));
      void agent.online.then(() => this.emit('online', id));
      running.agent = agent;
    } catch (err) {
      await link?.close();
      running.link = undefined;
      throw new SimulatorError('FLEET_SIM_AGENT_START', `simulated device ${id} did not start: ${(err as Error).message}`, { cause: err });
    }
  }
}

function prefixed(log: Logger, id: string): Logger {
  return {
    debug: (m) => log.debug(`${id}: ${m}`),
    info: (m) => log.info(`${id}: ${m}`),
    warn: (m) => log.warn(`${id}: ${m}`),
    error: (m) => log.error(`${id}: ${m}`),
  };
}

/** A load seam that fails this share of deploys' loads with AGENT_INJECTED_FAULT (restores always load). */
function injectLoadFailures(rate: number, random: () => number): NonNullable<AgentSeam['load']> {
  return (stored, purpose, load) => {
    if (purpose === 'deploy' && random() < rate) {
      return Promise.reject(new AgentError('AGENT_INJECTED_FAULT', `${stored.key}: load failure injected by the fleet simulator (fail rate ${rate})`));
    }
    return load();
  };
}
