// A seeded fault-injection run against a real kd-agent process, a real Mosquitto and a hostile artifact server:
// each iteration sends one state-changing command (or none) with faults mixed in at random, waits for its outcome
// the way a fleet would (re-sending the same id until a final answer comes), and then checks the invariants the
// agent promises. Used by `npm run faults` (200 iterations and more) and by a short run in the test suite.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  compareSemver, generateKeyPair, loadPublicKey, makeCommand, seededRandom, verifyPackage, writeKeyPair, type CommandFields, type EventMessage,
} from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { parseVersionKey } from '../../src/store/version-key.js';
import { AgentProcess } from '../fixtures/agent/agent-process.js';
import { makeDetectorPackage, type DetectorPackage } from '../fixtures/agent/detector-package.js';
import { FleetStandIn } from '../fixtures/agent/fleet-stand-in.js';
import { PackageOrigin, type HttpFault } from '../fixtures/agent/package-origin.js';
import { RestartableMosquitto } from '../fixtures/agent/restartable-mosquitto.js';
import { freePort, observer } from '../mqtt-brokers.js';

const FLEET = 'faults';
const DEVICE = 'dut';
const NAMES = ['shapes', 'other'] as const;
type Name = (typeof NAMES)[number];

/** Every kind of fault the suite injects. */
export const FAULT_KINDS = [
  'duplicate', 'replay', 'oversize', 'deep-nesting', 'not-json', 'wrong-device', 'unknown-command',
  'http-stall', 'http-trickle', 'http-truncate', 'http-redirect', 'http-outage',
  'broker-kill', 'broker-kill-persistent', 'agent-kill',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The commands an iteration may send, besides pings. */
const ACTIONS = ['deploy-up', 'deploy-down', 'deploy-gate', 'deploy-forged', 'rollback', 'rollback-stale', 'none'] as const;
type Action = (typeof ACTIONS)[number];
const ACTION_WEIGHTS: Record<Action, number> = {
  'deploy-up': 35, 'deploy-down': 8, 'deploy-gate': 8, 'deploy-forged': 5, rollback: 17, 'rollback-stale': 5, none: 22,
};

/** Options of {@link runFaultSuite}. */
export interface FaultSuiteOptions {
  iterations: number;
  seed: number;
  /** A fresh folder for keys, packages, the broker and the agent's data. */
  workDir: string;
  /** One line per iteration and per restart (default: nothing). */
  log?: (line: string) => void;
}

/** What a run did and checked. */
export interface FaultSuiteReport {
  seed: number;
  iterations: number;
  commands: Record<Action, number>;
  faults: Record<FaultKind, number>;
  faultsInjected: number;
  invariantsChecked: number;
  /** Times the fleet stand-in re-sent a command id for want of a final answer. */
  resends: number;
  agentStarts: number;
  brokerStarts: number;
  wallMs: number;
}

/** An invariant that did not hold: the run stops at the first, naming the iteration and the seed to replay it. */
export class FaultSuiteViolation extends Error {
  constructor(readonly iteration: number, readonly seed: number, detail: string) {
    super(`iteration ${iteration} (seed ${seed}): ${detail}`);
  }
}

interface Oracle {
  current: { name: Name; version: string } | null;
  previous: { name: Name; version: string } | null;
  highWater: Partial<Record<Name, { version: string; sha256: string }>>;
}

const MB = 1024 * 1024;

/** Runs the suite; resolves with the report, or rejects with a {@link FaultSuiteViolation} at the first broken invariant. */
export async function runFaultSuite(options: FaultSuiteOptions): Promise<FaultSuiteReport> {
  const { iterations, seed, workDir } = options;
  const log = options.log ?? (() => undefined);
  const rand = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const chance = (p: number): boolean => rand() < p;
  const started = Date.now();
  const report: FaultSuiteReport = {
    seed, iterations: 0, commands: Object.fromEntries(ACTIONS.map((a) => [a, 0])) as Record<Action, number>,
    faults: Object.fromEntries(FAULT_KINDS.map((f) => [f, 0])) as Record<FaultKind, number>,
    faultsInjected: 0, invariantsChecked: 0, resends: 0, agentStarts: 0, brokerStarts: 0, wallMs: 0,
  };
  const fault = (kind: FaultKind): void => {
    report.faults[kind]++;
    report.faultsInjected++;
  };

  await mkdir(workDir, { recursive: true });
  const key = generateKeyPair();
  const keyFile = join(workDir, 'fleet.pub');
  await writeKeyPair(key, { privateKeyPath: join(workDir, 'fleet.key'), publicKeyPath: keyFile });
  const trusted = [await loadPublicKey(keyFile)];
  const dataDir = join(workDir, 'agent');

  // Packages are made as versions are needed: shapes@1.0.0, 1.1.0, … and other@1.0.0, …
  const built = new Map<string, DetectorPackage>();
  const next: Record<Name, number> = { shapes: 0, other: 0 };
  const packageOf = async (name: Name, minor: number): Promise<DetectorPackage> => {
    const version = `1.${minor}.0`;
    let p = built.get(`${name}@${version}`);
    if (p === undefined) {
      p = await makeDetectorPackage(join(workDir, 'pkgs'), name, version, key.privateKeyPem, 1000 + minor * 2 + (name === 'other' ? 1 : 0));
      built.set(`${name}@${version}`, p);
    }
    return p;
  };

  const broker = new RestartableMosquitto(await freePort(), join(workDir, 'mosquitto'));
  await broker.start();
  report.brokerStarts++;
  const origin = new PackageOrigin();
  await origin.start(broker.url, FLEET, 5);
  const fleet = await FleetStandIn.connect(broker.url, FLEET, DEVICE);
  const second: MqttClient = await observer(broker.url, { protocolVersion: 5, clientId: 'fault-second', reconnectPeriod: 200 });

  const config = join(workDir, 'agent.yaml');
  await writeFile(config, [
    `fleet: ${FLEET}`, `deviceId: ${DEVICE}`, `dataDir: ${dataDir}`, `keys: [${keyFile}]`,
    'broker:', `  url: ${broker.url}`, '  protocolVersion: 5', '  reconnectMinMs: 50', '  reconnectMaxMs: 500',
    'runtime: { trtexec: false }', 'benchmark: { warmup: 1, iterations: 3 }', 'statusIntervalSec: 3600',
    // Small enough that stalls and outages resolve in seconds, not minutes.
    'limits: { chunkTimeoutMs: 400, downloadIdleTimeoutSec: 2, downloadRateWindowSec: 2, downloadMinBytesPerSec: 1024, downloadRetryWindowSec: 30, downloadDeadlineSec: 120 }',
    '',
  ].join('\n'));
  const agent = new AgentProcess(config);

  const oracle: Oracle = { current: null, previous: null, highWater: {} };
  const history: Array<{ id: string; payload: string }> = [];
  let pings = 0;
  let iteration = 0;
  const fail = (detail: string): never => {
    throw new FaultSuiteViolation(iteration, seed, `${detail}\n--- agent log (tail) ---\n${agent.log}`);
  };

  /** Sends `payload` until its id has a final answer (a fresh one or a repeat's recorded one), as a fleet retries. */
  const outcome = async (id: string, payload: string, timeoutMs = 240_000): Promise<EventMessage> => {
    const deadline = Date.now() + timeoutMs;
    let resendAt = Date.now() + 10_000;
    for (;;) {
      const got = fleet.outcome(id);
      if (got !== undefined) return got;
      if (Date.now() > deadline) fail(`no final answer to ${id} within ${timeoutMs} ms`);
      if (Date.now() > resendAt) {
        report.resends++;
        await fleet.sendRaw(payload).catch(() => undefined);
        resendAt = Date.now() + 10_000;
      }
      await delay(20);
    }
  };

  const ping = async (): Promise<EventMessage> => {
    const id = `ping-${++pings}`;
    const payload = JSON.stringify(makeCommand({ command: 'ping', id, deviceId: DEVICE }));
    await fleet.sendRaw(payload).catch(() => undefined);
    return outcome(id, payload, 120_000);
  };

  const startAgent = async (): Promise<void> => {
    agent.start();
    report.agentStarts++;
    const pong = await ping();
    if (pong.state !== 'succeeded') fail(`the agent's first ping after a start failed: ${JSON.stringify(pong)}`);
  };

  try {
    await startAgent();
    for (iteration = 1; iteration <= iterations; iteration++) {
      const action = chooseAction(rand, oracle);
      report.commands[action]++;
      const id = `c-${iteration}`;
      let fields: CommandFields | undefined;
      let expect: (e: EventMessage) => string | undefined = () => undefined;
      let apply: (e: EventMessage) => void = () => undefined;
      let via = '';

      if (action.startsWith('deploy')) {
        const name: Name = action === 'deploy-up' && chance(0.25) ? 'other' : action === 'deploy-down' ? downName(oracle)! : 'shapes';
        let p: DetectorPackage;
        if (action === 'deploy-down') {
          const mark = oracle.highWater[name]!;
          p = await packageOf(name, Math.floor(rand() * minorOf(mark.version)));
        } else {
          p = await packageOf(name, next[name]++);
        }
        const overChunks = chance(0.3);
        via = overChunks ? 'chunks' : 'http';
        let where: Record<string, unknown>;
        if (overChunks) {
          origin.bySha.set(p.sha256, p.tar);
          where = { mqtt: { chunkSize: 256 * 1024 } };
        } else {
          where = { http: { url: origin.add(p.tar, p.sha256) } };
          if (chance(0.5)) {
            const f = pick(['http-stall', 'http-trickle', 'http-truncate', 'http-redirect', 'http-outage'] as const);
            fault(f);
            origin.httpFaults.push(httpFault(f, p.size, rand));
          }
        }
        fields = {
          command: 'deploy', id, deviceId: DEVICE,
          package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, ...where },
          manifest: action === 'deploy-forged' ? { ...p.manifest, metrics: { 'metrics/mAP50(B)': 0.99 } } : p.manifest,
          ...(action === 'deploy-gate' ? { gates: { maxP95Ms: 0.0001 } } : {}),
        } as CommandFields;
        const target = { name, version: p.version };
        if (action === 'deploy-up') {
          expect = (e) => (e.state === 'succeeded' ? undefined : `a deploy of ${name}@${p.version} above the mark ended ${e.state} ${e.code ?? ''}: ${e.message ?? ''}`);
          apply = () => {
            const mark = oracle.highWater[name];
            if (mark === undefined || compareSemver(p.version, mark.version) >= 0) oracle.highWater[name] = { version: p.version, sha256: p.sha256 };
            oracle.previous = oracle.current;
            oracle.current = target;
          };
        } else if (action === 'deploy-down') {
          // The version active now (after a rollback) is taken as already active; anything else below the mark is refused.
          const active = oracle.current?.name === name && oracle.current.version === p.version;
          expect = (e) => (active
            ? (e.state === 'succeeded' && (e.result as { alreadyActive?: boolean }).alreadyActive === true ? undefined : `a deploy of the active ${name}@${p.version} ended ${e.state} ${e.code ?? ''}`)
            : (e.state === 'failed' && e.code === 'AGENT_DOWNGRADE_REFUSED' ? undefined : `an unsigned deploy of ${name}@${p.version} below the mark ${oracle.highWater[name]!.version} ended ${e.state} ${e.code ?? ''}`));
        } else if (action === 'deploy-gate') {
          // 'failed' then 'rolled_back', both naming the gate: whichever arrived first answers.
          expect = (e) => ((e.state === 'rolled_back' || e.state === 'failed') && e.code === 'AGENT_GATE_LATENCY' ? undefined : `a deploy failing its latency gate ended ${e.state} ${e.code ?? ''}`);
        } else {
          expect = (e) => (e.state === 'failed' && e.code === 'AGENT_MANIFEST_MISMATCH' ? undefined : `a deploy with a forged manifest ended ${e.state} ${e.code ?? ''}`);
        }
      } else if (action === 'rollback') {
        fields = { command: 'rollback', id, deviceId: DEVICE } as CommandFields;
        expect = (e) => {
          if (oracle.current === null) return e.code === 'AGENT_NO_ACTIVE_MODEL' ? undefined : `a rollback with nothing active ended ${e.state} ${e.code ?? ''}`;
          if (oracle.previous === null) return e.code === 'AGENT_NO_PREVIOUS_MODEL' ? undefined : `a rollback with no previous version ended ${e.state} ${e.code ?? ''}`;
          const want = oracle.previous.version;
          return e.state === 'rolled_back' && (e.result as { version?: string } | undefined)?.version === want ? undefined : `a rollback to ${want} ended ${e.state} ${e.code ?? ''} ${JSON.stringify(e.result)}`;
        };
        apply = (e) => {
          if (e.state !== 'rolled_back') return;
          [oracle.current, oracle.previous] = [oracle.previous, oracle.current];
        };
      } else if (action === 'rollback-stale') {
        fields = { command: 'rollback', id, deviceId: DEVICE, fromVersion: '0.0.1' } as CommandFields;
        expect = (e) => (e.state === 'failed' && e.code === (oracle.current === null ? 'AGENT_NO_ACTIVE_MODEL' : 'AGENT_ROLLBACK_STALE') ? undefined : `a stale rollback ended ${e.state} ${e.code ?? ''}`);
      }

      // Faults around the command: replays of old ids, garbage, a broker crash, an agent crash.
      // Recent ids only: the agent remembers its last 500 finished commands (docs/security.md), and each iteration adds about three.
      const recent = history.slice(-50);
      const replays = recent.length > 0 && chance(0.3) ? [...new Set(Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(recent)))] : [];
      const replayedBefore = new Map(replays.map((r) => [r.id, fleet.events.filter((e) => e.commandId === r.id && e.repeat !== true).length]));
      const garbage = chance(0.3) ? [pick(['oversize', 'deep-nesting', 'not-json', 'wrong-device', 'unknown-command'] as const)] : [];
      const copies = fields !== undefined && chance(0.4) ? 2 + Math.floor(rand() * 5) : 1;
      const brokerKillAt = chance(0.2) ? Math.floor(rand() * 1500) : undefined;
      const persistent = chance(0.5);
      const agentKillAt = chance(0.2) ? Math.floor(rand() * 2500) : undefined;

      const payload = fields === undefined ? undefined : JSON.stringify(makeCommand(fields));
      const sends: Array<Promise<unknown>> = [];
      if (payload !== undefined) {
        if (copies > 1) fault('duplicate');
        for (let k = 0; k < copies; k++) {
          const at = k === 0 ? 0 : Math.floor(rand() * 40);
          const client = k % 2 === 0 ? fleet.client : second;
          sends.push(delay(at).then(() => fleet.sendRaw(payload, client).catch(() => undefined)));
        }
        history.push({ id, payload });
      }
      for (const r of replays) {
        fault('replay');
        sends.push(delay(Math.floor(rand() * 40)).then(() => fleet.sendRaw(r.payload).catch(() => undefined)));
      }
      for (const g of garbage) {
        fault(g);
        sends.push(fleet.sendRaw(garbagePayload(g, iteration)).catch(() => undefined));
      }
      const crashes: Array<Promise<unknown>> = [];
      if (brokerKillAt !== undefined) {
        fault(persistent ? 'broker-kill-persistent' : 'broker-kill');
        crashes.push(delay(brokerKillAt).then(async () => {
          await broker.kill('SIGKILL');
          await delay(Math.floor(rand() * 500));
          await broker.start({ persistence: persistent });
          report.brokerStarts++;
        }));
      }
      if (agentKillAt !== undefined) {
        fault('agent-kill');
        crashes.push(delay(agentKillAt).then(async () => {
          await agent.kill('SIGKILL');
          await delay(Math.floor(rand() * 300));
          agent.start();
          report.agentStarts++;
        }));
      }
      await Promise.all(sends);
      await Promise.all(crashes);
      if (!agent.running) fail('the agent process exited by itself');

      let answer = '';
      if (payload !== undefined) {
        const e = await outcome(id, payload);
        const wrong = expect(e);
        if (wrong !== undefined) fail(wrong);
        apply(e);
        answer = `${e.state}${e.code ? ` ${e.code}` : ''}`;
      }
      origin.httpFaults.length = 0; // faults the deploy did not meet (a refusal before download) do not carry over

      // The invariants.
      const pong = await ping();
      check(pong.state === 'succeeded', `ping answered ${pong.state} ${pong.code ?? ''}`);
      check((pong.result as { active?: string | null }).active === (oracle.current?.version ?? null),
        `the agent serves ${(pong.result as { active?: string | null }).active}, but the last model to pass its gates is ${oracle.current?.version ?? 'none'}`);
      const state = JSON.parse(await readFile(join(dataDir, 'store', 'state.json'), 'utf8').catch(() => '{"current":null,"previous":null,"highWater":{}}')) as {
        current: string | null; previous: string | null; highWater: Record<string, { version: string; sha256: string }>;
      };
      const nameVersion = (k: string | null) => (k === null ? null : `${parseVersionKey(k)!.name}@${parseVersionKey(k)!.version}`);
      const want = (o: Oracle['current']) => (o === null ? null : `${o.name}@${o.version}`);
      check(nameVersion(state.current) === want(oracle.current), `state.json current is ${state.current}, expected ${want(oracle.current)}`);
      check(nameVersion(state.previous) === want(oracle.previous), `state.json previous is ${state.previous}, expected ${want(oracle.previous)}`);
      for (const k of [state.current, state.previous]) {
        if (k === null) continue;
        await verifyPackage(join(dataDir, 'store', 'versions', k), { trustedKeys: trusted }).catch((err: Error) => fail(`${k} does not verify: ${err.message}`));
        report.invariantsChecked++;
      }
      check(JSON.stringify(sortKeys(state.highWater)) === JSON.stringify(sortKeys(oracle.highWater)),
        `high-water marks ${JSON.stringify(state.highWater)}, expected ${JSON.stringify(oracle.highWater)}`);
      for (const k of await installedVersions(join(dataDir, 'store', 'versions'))) {
        const v = parseVersionKey(k)!;
        const mark = oracle.highWater[v.name as Name];
        const kept = k === state.current || k === state.previous;
        check(kept || mark === undefined || compareSemver(v.version, mark.version) >= 0, `${k} is installed below the high-water mark ${mark?.version} and is neither current nor previous`);
      }
      for (const [rid, count] of replayedBefore) {
        check(fleet.events.filter((e) => e.commandId === rid && e.repeat !== true).length === count, `replayed command ${rid} ran again`);
      }
      const left = await leftTempFiles(dataDir);
      check(left.length === 0, `temporary files left: ${left.join(', ')}`);
      check(agent.running, 'the agent process is not running');

      report.iterations = iteration;
      log(`#${iteration} ${action}${via ? ` (${via})` : ''}${copies > 1 ? ` x${copies}` : ''}${replays.length ? ` +${replays.length} replays` : ''}${garbage.length ? ` +${garbage.join(',')}` : ''}` +
        `${brokerKillAt !== undefined ? ` +broker-kill${persistent ? '(persistent)' : ''}` : ''}${agentKillAt !== undefined ? ' +agent-kill' : ''} → ${answer || 'ping'}; serving ${want(oracle.current) ?? 'none'}`);
    }
  } finally {
    report.wallMs = Date.now() - started;
    await agent.kill('SIGTERM').catch(() => undefined);
    await second.endAsync(true).catch(() => undefined);
    await fleet.close().catch(() => undefined);
    await origin.stop().catch(() => undefined);
    await broker.kill('SIGKILL').catch(() => undefined);
  }
  return report;

  function check(ok: boolean, detail: string): void {
    report.invariantsChecked++;
    if (!ok) fail(detail);
  }
}

function chooseAction(rand: () => number, oracle: Oracle): Action {
  const possible = ACTIONS.filter((a) => a !== 'deploy-down' || downName(oracle) !== undefined);
  const total = possible.reduce((s, a) => s + ACTION_WEIGHTS[a], 0);
  let r = rand() * total;
  for (const a of possible) {
    r -= ACTION_WEIGHTS[a];
    if (r < 0) return a;
  }
  return 'none';
}

/** A name with a version below its mark to try (the mark above 1.0.0), or undefined. */
function downName(oracle: Oracle): Name | undefined {
  return NAMES.find((n) => oracle.highWater[n] !== undefined && minorOf(oracle.highWater[n]!.version) > 0);
}

function minorOf(version: string): number {
  return Number(version.split('.')[1]);
}

function httpFault(kind: 'http-stall' | 'http-trickle' | 'http-truncate' | 'http-redirect' | 'http-outage', size: number, rand: () => number): HttpFault {
  const bytes = Math.floor(rand() * size * 0.9);
  switch (kind) {
    case 'http-stall': return { kind: 'stall', bytes, ms: 4000 };
    case 'http-trickle': return { kind: 'trickle', ms: 4000 };
    case 'http-truncate': return { kind: 'truncate', bytes };
    case 'http-redirect': return { kind: 'redirect' };
    case 'http-outage': return { kind: 'outage', status: 503 };
  }
}

function garbagePayload(kind: 'oversize' | 'deep-nesting' | 'not-json' | 'wrong-device' | 'unknown-command', iteration: number): string {
  const ping = JSON.stringify(makeCommand({ command: 'ping', id: `g-${iteration}`, deviceId: DEVICE }));
  switch (kind) {
    case 'oversize': return `${ping.slice(0, -1)},"pad":"${'x'.repeat(MB + 16)}"}`;
    case 'deep-nesting': return `${ping.slice(0, -1)},"extra":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
    case 'not-json': return '{"v":1,"type":"cmd","command":';
    case 'wrong-device': return JSON.stringify(makeCommand({ command: 'ping', id: `g-${iteration}`, deviceId: 'someone-else' }));
    case 'unknown-command': return JSON.stringify({ ...JSON.parse(ping) as object, command: 'format-disk' });
  }
}

async function installedVersions(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.complete')).map((n) => n.slice(0, -'.complete'.length));
}

/** Temporary files and folders under `dir` that stay for two looks 300 ms apart (a write in progress is not a leftover). */
async function leftTempFiles(dir: string): Promise<string[]> {
  const look = async (): Promise<string[]> => {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
    return entries.filter((e) => /\.tmp($|-)/.test(e.name)).map((e) => join(e.parentPath, e.name));
  };
  const first = await look();
  if (first.length === 0) return [];
  await delay(300);
  const second = new Set(await look());
  return first.filter((f) => second.has(f));
}

function sortKeys(o: object): object {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}
