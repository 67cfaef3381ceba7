// Issue 16: "a kill at random points of a job resumes or fails cleanly with the old model serving". A real kd-agent
// process (AgentProcess) on the embedded broker runs one adaptation job on toy models (64 px, 12 frames, one epoch)
// with real kd-trainer children, and is killed with SIGKILL at seeded random moments of admission, labelling, training,
// packaging and activation. After each kill: no kd-trainer of the job survives its agent, the store holds no
// half-written version, and the restarted agent serves the base (or, once activation began, the base or the verified
// adapted model: never none). At the end the job has one final state, the retained message says it, and the agent
// serves the adapted model, verified with the device's own key.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  extractTar, FINAL_ADAPT_STATES, fleetTopics, generateKeyPair, loadPublicKey, makeCommand, seededRandom, verifyPackage, writeKeyPair,
  type AdaptMessage, type AdaptState, type EventMessage,
} from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelStore } from '../src/store/model-store.js';
import { KD_TRAINER_FROM_SOURCE, makeStudentPackage, makeTeacherPackage, writeFrames, type BuiltPackage } from './agent-adapt-fixtures.js';
import { AgentProcess } from './fixtures/agent/agent-process.js';
import { FleetStandIn } from './fixtures/agent/fleet-stand-in.js';
import { observer, startAedes, waitFor, type AedesHarness } from './mqtt-brokers.js';

const FLEET = 'lab';
const JOB = 'j-kill';
// Each seed is one job on its own device and data folder (about a minute each here); KD_ADAPT_KILL_SEEDS=1,2,3 runs others.
const SEEDS = (process.env.KD_ADAPT_KILL_SEEDS ?? '16,5').split(',').map(Number);
const topics = fleetTopics(FLEET);

/** Where the kills land: the stage whose first message starts the clock, and the most milliseconds after it. */
// Packaging and activation take well under a second with toy models, so their window is short.
const KILLS: { stage: 'admission' | AdaptState; maxDelayMs: number }[] = [
  { stage: 'admission', maxDelayMs: 400 },
  { stage: 'labelling', maxDelayMs: 800 },
  { stage: 'training', maxDelayMs: 3000 },
  { stage: 'packaging', maxDelayMs: 300 },
  { stage: 'activating', maxDelayMs: 250 },
];
const ORDER: readonly string[] = ['admission', 'queued', 'labelling', 'training', 'evaluating', 'exporting', 'packaging', 'activating'];

let root: string;
let broker: AedesHarness;
let keyFile: string;
let base: BuiltPackage;
let teacher: BuiltPackage;
const t0 = Date.now();
// The run of the seed under test: its device, data folder, agent process, fleet stand-in and the adapt messages seen.
let DEVICE: string;
let ADAPTED: string;
let dataDir: string;
let agent: AgentProcess;
let fleet: FleetStandIn;
let adapts: AdaptMessage[] = [];
const standIns: ChildProcess[] = [];

/** The pids of live processes whose command line names `dir` (a kd-trainer adapt of the job: its --out is there). */
async function processesNaming(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    // A zombie (exited, not reaped yet) has an empty command line: it runs nothing.
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').some((a) => a.startsWith(dir))) out.push(Number(name));
  }
  return out;
}

/**
 * The store's files (as store-crash.test.ts checks them): the pointer names whole versions (their `.complete` marker
 * written) that verify, never none; every marked version verifies. Right after a kill an install cut short may have
 * left a folder without its marker (never pointed at; the next start collects it); with `settled`, after the job, there
 * is none, and nothing half-written: no temporary name, an empty staging.
 */
async function checkStore(trusted: Awaited<ReturnType<typeof loadPublicKey>>[], settled = false): Promise<{ current: string | null; versions: string[] }> {
  const store = join(dataDir, 'store');
  const state = JSON.parse(await readFile(join(store, 'state.json'), 'utf8')) as { current: string | null; previous: string | null };
  expect(state.current, 'a model is always active').not.toBeNull();
  const versions = join(store, 'versions');
  const names = await readdir(versions);
  for (const key of [state.current, state.previous]) {
    if (key === null) continue;
    await access(join(versions, `${key}.complete`));
    await verifyPackage(join(versions, key), { trustedKeys: trusted });
  }
  const complete = names.filter((n) => n.endsWith('.complete')).map((n) => n.slice(0, -'.complete'.length));
  for (const key of complete) {
    expect(names, `${key}.complete marks a version that is not there`).toContain(key);
    await verifyPackage(join(versions, key), { trustedKeys: trusted });
  }
  if (settled) {
    expect(names.filter((n) => !n.endsWith('.complete')).sort(), 'every version folder is whole').toEqual([...complete].sort());
    expect(await readdir(join(store, 'staging')).catch(() => [])).toEqual([]);
  }
  return { current: state.current, versions: complete };
}

const jobMessages = (): AdaptMessage[] => adapts.filter((m) => m.jobId === JOB);
const lastState = (): AdaptState | undefined => jobMessages().at(-1)?.state;
const reached = (stage: string): boolean => jobMessages().some((m) => ORDER.indexOf(m.state) >= ORDER.indexOf(stage) || FINAL_ADAPT_STATES.includes(m.state));
const isFinal = (): boolean => FINAL_ADAPT_STATES.includes(lastState() ?? 'queued');

/** Sends `payload` until its command id has a final answer, as a fleet retries. */
async function outcome(id: string, payload: string, timeoutMs = 180_000): Promise<EventMessage> {
  const deadline = Date.now() + timeoutMs;
  let resendAt = 0;
  for (;;) {
    const got = fleet.outcome(id);
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`no final answer to ${id} within ${timeoutMs} ms; agent log:\n${agent.log}`);
    if (Date.now() > resendAt) {
      await fleet.sendRaw(payload).catch(() => undefined);
      resendAt = Date.now() + 10_000;
    }
    await delay(20);
  }
}

/** A live process holding `jobDir`'s lock as kd-trainer writes it (pid and start time); it exits 130 on SIGTERM. */
async function holdLock(jobDir: string): Promise<{ exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }> {
  const p = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => setTimeout(() => process.exit(130), 100)); setInterval(() => {}, 1000); process.stdout.write('ready')"], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  standIns.push(p);
  const exited = once(p, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  await once(p.stdout!, 'data');
  const stat = await readFile(`/proc/${p.pid}/stat`, 'utf8');
  const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  await writeFile(join(jobDir, 'lock'), JSON.stringify({ pid: p.pid, startTime, since: new Date().toISOString(), by: 'kd-trainer adapt (test stand-in)' }));
  return { exited };
}

let pings = 0;
/** The version the agent serves now, by ping. */
async function serving(): Promise<string | null> {
  const id = `ping-${++pings}`;
  const e = await outcome(id, JSON.stringify(makeCommand({ command: 'ping', id, deviceId: DEVICE })));
  expect(e.state).toBe('succeeded');
  return (e.result as { active: string | null }).active;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-adapt-kill-'));
  const fleetKey = generateKeyPair();
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(fleetKey, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  // The package's recipe trains 3 epochs (over the configuration's 1) and asks for a gain the command overrides.
  await writeFile(join(root, 'recipe.yaml'), 'epochs: 3\nminGain: 0.5\n');
  base = await makeStudentPackage(join(root, 'pkgs'), 'shapes', '1.0.0', join(root, 'fleet.key'), 7, { replayImages: 1, adaptRecipe: join(root, 'recipe.yaml') });
  teacher = await makeTeacherPackage(join(root, 'pkgs'), 'shapes-teacher', '1.0.0', fleetKey.privateKeyPem);
  await writeFrames(root, join(root, 'camera'), 12);
  broker = await startAedes();
}, 300_000);

/** A device of its own for `seed`: the base and the teacher installed, its configuration, its fleet stand-in. */
async function setUpDevice(seed: number): Promise<void> {
  DEVICE = `cam-k${seed}`;
  ADAPTED = `1.0.0+adapt.${DEVICE}.1`;
  dataDir = join(root, `agent-${seed}`);
  adapts = [];
  // The base and the teacher installed with the store's own API, verified against the fleet's key as a deploy would.
  const trusted = [await loadPublicKey(keyFile)];
  for (const [pkg, store, roles] of [[base, 'store', ['model']], [teacher, 'teachers', ['teacher']]] as const) {
    const s = await ModelStore.open(join(dataDir, store));
    const staging = await s.stagingPath();
    await extractTar(pkg.tar, staging);
    await verifyPackage(staging, { trustedKeys: trusted, roles: [...roles] });
    await s.activate((await s.install(staging, { name: pkg.name, version: pkg.version, sha256: pkg.sha256 })).key);
  }
  fleet = await FleetStandIn.connect(broker.url, FLEET, DEVICE, 4);
  await fleet.client.subscribeAsync(topics.adapt(DEVICE), { qos: 1 });
  const device = DEVICE;
  fleet.client.on('message', (topic, payload) => {
    if (topic === topics.adapt(device) && payload.length > 0) adapts.push(JSON.parse(payload.toString()) as AdaptMessage);
  });
  const config = join(root, `agent-${seed}.yaml`);
  // JSON is YAML: the trainer's argv (paths with any character) survives as it is.
  await writeFile(config, JSON.stringify({
    fleet: FLEET, deviceId: DEVICE, dataDir, keys: [keyFile],
    broker: { url: broker.url, reconnectMinMs: 50, reconnectMaxMs: 500 },
    runtime: { trtexec: false }, benchmark: { warmup: 1, iterations: 5 }, statusIntervalSec: 3600,
    serve: { source: { replay: join(root, 'camera'), fps: 20, loop: true } },
    capture: { enabled: true, everyN: 1, maxFrames: 24 },
    adapt: {
      trainer: KD_TRAINER_FROM_SOURCE, extraArgs: ['--backend', 'wasm', '--workers', '0', '--calib-images', '4', '--formats', 'onnx'],
      minFrames: 12, epochs: 1, memoryBaseMb: 32,
    },
  }, null, 2));
  agent = new AgentProcess(config, 'info');
}

/** Stops the seed's agent (and any trainer a failed run left) and its stand-in. */
async function tearDownDevice(): Promise<void> {
  await agent?.kill('SIGKILL').catch(() => undefined);
  for (const pid of await processesNaming(dataDir).catch(() => [])) process.kill(pid, 'SIGKILL');
  for (const p of standIns) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await fleet?.close().catch(() => undefined);
}

afterAll(async () => {
  await tearDownDevice();
  await broker?.close().catch(() => undefined);
  await rm(root, { recursive: true, force: true });
  console.log(`agent-adapt-kill.test.ts: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
});

describe('an adaptation job under SIGKILL of its agent', () => {
  it.each(SEEDS)('resumes after kills in admission, labelling, training, packaging and activation (seed %i), with the base serving until the activation', async (SEED) => {
    await setUpDevice(SEED);
    const trusted = [await loadPublicKey(keyFile), await loadPublicKey(join(dataDir, 'keys', 'device.pub')).catch(() => undefined)];
    const rand = seededRandom(SEED);
    const jobDir = join(dataDir, 'adapt', JOB, 'job');
    agent.start();
    expect(await serving()).toBe('1.0.0');
    const captured = async (): Promise<number> => (await readdir(join(dataDir, 'capture')).catch(() => [])).filter((n) => /^\d{16}\.(jpg|png|webp|bmp)$/.test(n)).length;
    for (let i = 0; i < 600 && (await captured()) < 12; i++) await delay(100);

    const adapt = JSON.stringify(makeCommand({ command: 'adapt', id: 'a-kill', deviceId: DEVICE, jobId: JOB, recipe: { minGain: -1 } }));
    await fleet.sendRaw(adapt);
    const log: string[] = [];
    let orphan: { exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } | undefined;
    for (const k of KILLS) {
      if (isFinal()) break;
      if (k.stage !== 'admission') await waitFor(`${JOB} to reach ${k.stage}`, () => reached(k.stage), 240_000);
      const wait = Math.floor(rand() * k.maxDelayMs);
      await delay(wait);
      const during = lastState() ?? 'admission';
      await agent.kill('SIGKILL');
      log.push(`${k.stage}+${wait}ms → killed in ${during}${FINAL_ADAPT_STATES.includes(during as AdaptState) ? ' (too late)' : ''}`);

      // The trainer of the killed agent stops by itself (its parent is gone: checkpoint, exit), before any restart.
      let left: number[] = [];
      for (let i = 0; i < 600; i++) {
        left = await processesNaming(jobDir);
        if (left.length === 0) break;
        await delay(100);
      }
      expect(left, `kd-trainer processes of ${JOB} outlived their agent`).toEqual([]);
      // And it stopped at its next step rather than finish the job as an orphan: killed before the evaluation, the job
      // has no report yet (kd-trainer writes adapt.json last).
      if (['admission', 'queued', 'labelling', 'training'].includes(during)) {
        expect(existsSync(join(jobDir, 'adapt.json')), `the orphaned kd-trainer of ${JOB} went on after its agent was killed in ${during}`).toBe(false);
      }
      // A trainer without that watch (an older kd-trainer, a wrapper that drops KD_PARENT_PID) would still run and hold
      // the job folder's lock: stood in for by a real process that holds it and stops on SIGTERM, as kd-trainer does.
      // The restarted agent must stop it before its own child starts (which would otherwise wait, then fail LOCKED).
      // Once per run, after the kill aimed at training, when the record says a trainer was at work (the restart runs one).
      const recorded = JSON.parse(await readFile(join(dataDir, 'adapt', JOB, 'agent-job.json'), 'utf8').catch(() => '{}')) as { state?: string };
      if (k.stage === 'training' && ['queued', 'labelling', 'training', 'evaluating', 'exporting'].includes(recorded.state ?? '')) orphan = await holdLock(jobDir);
      // Whatever the kill cut short, the store's pointer names a whole, verified version; never none.
      trusted[1] ??= await loadPublicKey(join(dataDir, 'keys', 'device.pub')).catch(() => undefined);
      await checkStore(trusted.filter((k) => k !== undefined));

      agent.start();
      const active = await serving();
      expect(active, 'a model serves after every restart').not.toBeNull();
      if (!reached('activating')) expect(active, `the base serves until the activation (${log.at(-1)})`).toBe('1.0.0');
      else expect(['1.0.0', ADAPTED]).toContain(active);
    }
    // The command has its answer (a re-sent copy gets the recorded one), and the job goes on to its end.
    expect((await outcome('a-kill', adapt)).state).toBe('succeeded');
    await waitFor(`${JOB} to end`, isFinal, 300_000).catch((err: Error) => { throw new Error(`${err.message}: ${log.join('; ')}\n${agent.log}`); });
    console.log(`agent-adapt-kill (seed ${SEED}): ${log.join('; ')}; states ${jobMessages().map((m) => m.state).filter((s, i, a) => s !== a[i - 1]).join(' → ')}`);

    // One final state, and the retained message is it (a late subscriber, as the fleet after its own restart).
    const finals = [...new Set(jobMessages().filter((m) => FINAL_ADAPT_STATES.includes(m.state)).map(({ ts: _ts, ...m }) => JSON.stringify(m)))];
    expect(finals, 'the job ended once, the same way').toHaveLength(1);
    const done = JSON.parse(finals[0]!) as AdaptMessage;
    expect(done, done.message).toMatchObject({ state: 'succeeded', accepted: true, activated: true, version: ADAPTED, commandId: 'a-kill' });
    if (orphan !== undefined) {
      // Stopped by the restarted agent with SIGTERM (its handler exits 130), not left running beside the new child.
      const how = await Promise.race([orphan.exited, delay(60_000).then(() => 'still running')]);
      expect(how, 'the restarted agent stopped the lock\'s live owner with SIGTERM').toEqual({ code: 130, signal: null });
    }
    const late = await observer(broker.url, { clientId: 'late-fleet' });
    try {
      const retained = new Promise<AdaptMessage>((resolve) => late.on('message', (t, p) => { if (t === topics.adapt(DEVICE)) resolve(JSON.parse(p.toString()) as AdaptMessage); }));
      await late.subscribeAsync(topics.adapt(DEVICE), { qos: 1 });
      expect(await retained).toMatchObject({ jobId: JOB, state: 'succeeded', version: ADAPTED });
    } finally {
      await late.endAsync();
    }

    // The agent serves the adapted model, made and verified on this device (its own key, no other), installed once.
    expect(await serving()).toBe(ADAPTED);
    const deviceKey = await loadPublicKey(join(dataDir, 'keys', 'device.pub'));
    const store = await checkStore([await loadPublicKey(keyFile), deviceKey], true);
    expect(store.versions.filter((v) => v.includes('+adapt.'))).toHaveLength(1);
    const current = join(dataDir, 'store', 'versions', store.current!);
    expect((await verifyPackage(current, { trustedKeys: [deviceKey] })).manifest).toMatchObject({
      version: ADAPTED, replay: { dir: 'replay/images', images: 1, labels: 'replay/labels' }, adapt: { recipe: { epochs: 3, minGain: 0.5 } },
    });
    await expect(verifyPackage(current, { trustedKeys: [await loadPublicKey(keyFile)] })).rejects.toMatchObject({ code: 'PACKAGE_KEY_UNTRUSTED' });
    // Nothing of the job runs or holds its folder any more.
    expect(await processesNaming(jobDir)).toEqual([]);
    expect(existsSync(join(jobDir, 'lock'))).toBe(false);
    const record = JSON.parse(await readFile(join(dataDir, 'adapt', JOB, 'agent-job.json'), 'utf8')) as { state: string; recipeFrom: Record<string, string>; recipe: Record<string, number> };
    expect(record).toMatchObject({ state: 'succeeded', recipe: { minGain: -1, epochs: 3, imgsz: 64 }, recipeFrom: { minGain: 'command', epochs: 'package', imgsz: 'model' } });
    expect(done).toMatchObject({ epoch: 3, epochs: 3 });
    await tearDownDevice();
  }, 600_000);
});
