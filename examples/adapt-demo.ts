/**
 * The fleet half of the adaptation demo (issue 16; examples/adapt-demo.sh makes its inputs): start kd-fleet on its
 * embedded broker, start a real kd-agent (its own process, as on a device) whose camera replays domain-b frames with
 * frame capture on, roll the domain-a student out, push the teacher, wait until the capture holds the frames, start
 * an adaptation job through the fleet's HTTP API as an operator would, follow its states live, and print the
 * before/after table, with each model also measured on a labelled domain-b set the device never saw.
 *
 *   node --conditions=source --import tsx examples/adapt-demo.ts --root runs/demo-adapt [--epochs 5] [--frames 160]
 *     [--lr0 0.002] [--pseudo-conf 0.3] [--max-loss 0.02] [--fps 10] [--timeout 3600]
 *
 * `--root` holds what adapt-demo.sh made: keys/fleet.{key,pub}, packages/shapes-1.0.0.tar and
 * packages/shapes-teacher-1.0.0.tar, runs/{student,teacher}/weights/best.kdw and data/{a,b-camera,b-holdout}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FleetServer, webHandlers, type AdaptJobDetail, type AdaptJobSnapshot } from '@kd-edge/fleet';

const args = (() => {
  try {
    return parseArgs({
      options: {
        root: { type: 'string', default: 'runs/demo-adapt' }, epochs: { type: 'string', default: '5' }, frames: { type: 'string', default: '160' },
        lr0: { type: 'string' }, 'pseudo-conf': { type: 'string', default: '0.3' }, 'max-loss': { type: 'string', default: '0.02' },
        'min-gain': { type: 'string' }, fps: { type: 'string', default: '10' }, timeout: { type: 'string', default: '3600' },
        imgsz: { type: 'string', default: '128' }, 'teacher-weights': { type: 'string' },
      },
    });
  } catch (err) {
    // A negative number goes as --min-gain=-1.
    return fail((err as Error).message);
  }
})();
const a = args.values;
const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const root = resolve(a.root!);
const num = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`--${name}: expected a number, got ${JSON.stringify(v)}`);
  return n;
};
const frames = num('frames', a.frames)!;
const fps = num('fps', a.fps)!;
const imgsz = num('imgsz', a.imgsz)!;
const DEVICE = 'cam-01';
const JOB = `demo-${Date.now().toString(36)}`;
const paths = {
  pub: join(root, 'keys/fleet.pub'), key: join(root, 'keys/fleet.key'),
  student: join(root, 'packages/shapes-1.0.0.tar'), teacher: join(root, 'packages/shapes-teacher-1.0.0.tar'),
  studentKdw: join(root, 'runs/student/weights/best.kdw'), teacherKdw: resolve(a['teacher-weights'] ?? join(root, 'runs/teacher/weights/best.kdw')),
  camera: join(root, 'data/b-camera/images/train'), bHoldout: join(root, 'data/b-holdout/data.yaml'), aData: join(root, 'data/a/data.yaml'),
  fleet: join(root, 'fleet'),
};
for (const [what, p] of Object.entries(paths)) {
  if (what !== 'fleet' && !existsSync(p)) fail(`missing ${p} (${what}): run examples/adapt-demo.sh (npm run demo:adapt), which makes it`);
}
const device = join(paths.fleet, 'devices', DEVICE);

const t0 = Date.now();
const say = (msg: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${msg}`);
function fail(msg: string): never {
  console.error(`adapt-demo: ${msg}`);
  process.exit(2);
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${(timeoutMs / 1000).toFixed(0)} s waiting for ${what}`);
    await sleep(250);
  }
}

// --- cleanup: the agent's process and the fleet, on every way out ---------------------------------------------------
let server: FleetServer | undefined;
let agent: ChildProcess | undefined;
let closing: Promise<void> | undefined;
function shutdown(): Promise<void> {
  closing ??= (async () => {
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      const exited = new Promise<void>((r) => agent!.once('exit', () => r()));
      agent.kill('SIGTERM');
      const timer = setTimeout(() => agent?.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await server?.close();
  })();
  return closing;
}
process.once('SIGINT', () => {
  console.log('\ninterrupted: stopping the agent and the fleet');
  void shutdown().finally(() => process.exit(130));
});

// --- kd-trainer val, for the labelled sets the device never sees ------------------------------------------------------
interface Figures { map50: number; map: number }
/** `kd-trainer val` in a child process; the figures of its `all` row. */
function kdVal(weights: string, data: string): Promise<Figures & { images: number }> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(repo, 'packages/trainer/src/bin/kd-trainer.ts'),
      'val', '--weights', weights, '--data', data, '--imgsz', String(imgsz), '--workers', '0'], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (out += String(d)));
    child.on('error', rej);
    child.on('exit', (code) => {
      // "all  <images> <instances> <P> <R> <mAP50> <mAP50-95>"
      const row = out.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[0] === 'all' && f.length >= 7);
      if (code !== 0 || row === undefined) rej(new Error(`kd-trainer val ${weights} on ${data} failed (exit ${code}):\n${out.split('\n').slice(-8).join('\n')}`));
      else res({ images: Number(row[1]), map50: Number(row[5]), map: Number(row[6]) });
    });
  });
}

/** The job's states as a line each: what changed since the last one printed. */
function describe(j: AdaptJobSnapshot): string {
  const f = (x: number | null | undefined): string => (x === null || x === undefined ? '—' : x.toFixed(3));
  switch (j.state) {
    case 'labelling': return `labelling: the teacher labels the captured frames and replay images ${j.progress ? `${j.progress.done}/${j.progress.total}` : ''}`;
    case 'training': {
      const losses = j.losses ? Object.entries(j.losses).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(' ') : '';
      const ho = j.holdout?.after ? `  hold-out mAP50 ${f(j.holdout.after.map50)} mAP50-95 ${f(j.holdout.after.map)}` : '';
      return `training: epoch ${j.epoch ?? 0}/${j.epochs ?? '?'} ${j.frames ? `(${j.frames.used} frames, ${j.frames.holdout} held out) ` : ''}${losses}${ho}`;
    }
    case 'evaluating': return 'evaluating: serving and adapted student on the hold-out frames and on the package\'s val/ images';
    case 'exporting': return 'exporting: ONNX of the adapted student';
    case 'packaging': return `packaging: ${j.base.name}@${j.version ?? '?'}, signed with the device's own key`;
    case 'activating': return `activating ${j.version ?? ''} behind the deploy gates`;
    default: return `${j.state}${j.code ? ` ${j.code}` : ''}${j.message ? `: ${j.message}` : ''}${j.final && j.reasons.length > 0 ? ` (${j.reasons.length} checks, below)` : ''}`;
  }
}

/** The adapted student's weights while the job still has them (its run folder is deleted once the job ends). */
function keepCandidate(): void {
  const w = join(device, 'data', 'adapt', JOB, 'job', 'run', 'weights');
  for (const f of ['best.kdw', 'last.kdw']) {
    try {
      if (existsSync(join(w, f))) {
        copyFileSync(join(w, f), join(root, 'adapted-candidate.kdw'));
        return;
      }
    } catch { /* removed meanwhile: the last copy stays */ }
  }
}

/** The adapted package's weights in the device's store (`weights/model.kdw` of the manifest with that version). */
function findPackageWeights(dir: string, version: string, depth = 0): string | undefined {
  if (depth > 5 || !existsSync(dir)) return undefined;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isFile() && e.name === 'manifest.json') {
      try {
        const m = JSON.parse(readFileSync(p, 'utf8')) as { version?: string; weights?: { path?: string } };
        if (m.version === version && m.weights?.path && existsSync(join(dir, m.weights.path))) return join(dir, m.weights.path);
      } catch { /* not a manifest we can read */ }
    } else if (e.isDirectory()) {
      const found = findPackageWeights(p, version, depth + 1);
      if (found) return found;
    }
  }
  return undefined;
}

try {
  // Accuracy before: the student and the teacher on labelled b (never on the device) and on domain a's val split.
  say('measuring the student and the teacher on the labelled b hold-out and on a\'s val split (kd-trainer val)');
  const before = { studentB: await kdVal(paths.studentKdw, paths.bHoldout), teacherB: await kdVal(paths.teacherKdw, paths.bHoldout),
    studentA: await kdVal(paths.studentKdw, paths.aData), teacherA: await kdVal(paths.teacherKdw, paths.aData) };
  say(`b hold-out mAP50-95: student ${before.studentB.map.toFixed(3)}, teacher ${before.teacherB.map.toFixed(3)}`);
  if (before.teacherB.map <= before.studentB.map) {
    say('warning: the teacher is no better than the student on b, so adaptation has nothing to gain; train them longer (STUDENT_EPOCHS, TEACHER_EPOCHS)');
  }

  const token = randomBytes(12).toString('hex');
  server = await FleetServer.start({
    dataDir: join(paths.fleet, 'server'), fleet: 'demo', httpPort: 0, mqttPort: 0, wsPort: false,
    trustedKeys: [paths.pub], signKey: paths.key, token, tickMs: 250, handlers: webHandlers(),
  });
  const fleetServer = server;
  const ctx = server.context;
  say(`kd-fleet up: API ${server.httpUrl}  MQTT ${server.mqttUrl}`);
  const api = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const isTar = body instanceof Uint8Array;
    const res = await fetch(fleetServer.httpUrl + path, {
      method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': isTar ? 'application/x-tar' : 'application/json' }) },
      body: body === undefined ? undefined : isTar ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
  };
  const expectOk = <T>(what: string, r: { status: number; body: T }): T => {
    if (r.status >= 300) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };

  // The device: a real kd-agent process, its camera a replay of domain-b frames, every served frame a capture candidate.
  mkdirSync(device, { recursive: true });
  const tsx = fileURLToPath(import.meta.resolve('tsx'));
  const config = {
    fleet: 'demo', deviceId: DEVICE, dataDir: join(device, 'data'), keys: [paths.pub],
    broker: { url: server.mqttUrl, reconnectMinMs: 200, reconnectMaxMs: 2000 },
    runtime: { trtexec: false }, benchmark: { warmup: 2, iterations: 20 }, statusIntervalSec: 5,
    serve: { source: { replay: paths.camera, fps, loop: true } },
    capture: { enabled: true, everyN: 1, maxFrames: frames },
    adapt: {
      // kd-trainer from this checkout's sources (the agent would take an installed build first).
      trainer: [process.execPath, '--conditions=source', '--import', `file://${tsx}`, join(repo, 'packages/trainer/src/bin/kd-trainer.ts')],
      extraArgs: ['--workers', '0', '--formats', 'onnx'], minFrames: Math.min(frames, 20), threads: 1, nice: 10,
    },
  };
  writeFileSync(join(device, 'agent.json'), JSON.stringify(config, null, 2));
  const log = createWriteStream(join(device, 'agent.log'));
  agent = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(repo, 'packages/edge-agent/src/bin/kd-agent.ts'), '--config', join(device, 'agent.json')],
    { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout!.pipe(log);
  agent.stderr!.pipe(log);
  agent.once('exit', (code, signal) => {
    if (!closing) say(`kd-agent exited unexpectedly (${signal ?? `code ${code}`}); its log: ${join(device, 'agent.log')}`);
  });
  await until(`${DEVICE} online (log: ${join(device, 'agent.log')})`, 120_000, () => (ctx.devices.get(DEVICE)?.online ? true : undefined));
  say(`${DEVICE} online: a real kd-agent (pid ${agent.pid}), its camera replays ${readdirSync(paths.camera).length} domain-b frames at ${fps} fps, capture on`);

  // Roll out the student (the fleet's signed release), then push the teacher: both verified against the fleet key.
  const pushed = expectOk('push the student', await api<{ name: string; version: string; size: number }>('POST', '/api/models', new Uint8Array(readFileSync(paths.student))));
  const rollout = expectOk('start the rollout', await api<{ id: string }>('POST', '/api/rollouts', {
    package: { name: pushed.name, version: pushed.version }, target: { deviceIds: [DEVICE] }, waves: { canary: { count: 1 }, percents: [100] },
  }));
  say(`registry: ${pushed.name}@${pushed.version} (${(pushed.size / 1e6).toFixed(2)} MB); rollout ${rollout.id} to ${DEVICE}`);
  const r = await until(`rollout ${rollout.id}`, 300_000, () => {
    const x = ctx.rollouts.get(rollout.id);
    return x && !['running', 'paused', 'awaiting_approval'].includes(x.state) ? x : undefined;
  });
  if (ctx.devices.get(DEVICE)?.activeModel?.version !== pushed.version) {
    throw new Error(`rollout ${r.state}${r.reason ? ` (${r.reason})` : ''}: ${DEVICE} does not serve ${pushed.version}; see ${join(device, 'agent.log')}`);
  }
  say(`rollout ${r.state}: ${DEVICE} serves ${pushed.name}@${pushed.version}`);
  const teacherPkg = expectOk('push the teacher package', await api<{ name: string; version: string }>('POST', '/api/models', new Uint8Array(readFileSync(paths.teacher))));
  const sent = expectOk('push the teacher to the device', await api<{ commandId: string }>('POST', `/api/devices/${DEVICE}/teacher`, { name: teacherPkg.name, version: teacherPkg.version }));
  const answer = await until('the teacher installed', 120_000, () => {
    const e = ctx.devices.get(DEVICE)?.lastEvent;
    return e?.commandId === sent.commandId && ['succeeded', 'failed'].includes(e.state) ? e : undefined;
  });
  if (answer.state !== 'succeeded') throw new Error(`teacher push ${answer.state}: ${answer.code ?? ''} ${answer.message ?? ''}`);
  say(`teacher ${teacherPkg.name}@${teacherPkg.version} installed on ${DEVICE} (kept for labelling, never served)`);

  // The capture fills as the camera's frames are served.
  const captureDir = join(device, 'data', 'capture');
  const captured = (): number => (existsSync(captureDir) ? readdirSync(captureDir).filter((f) => /^\d{16}\.(jpg|png|webp|bmp)$/.test(f)).length : 0);
  let shown = -1;
  await until(`${frames} captured frames in ${captureDir}`, Math.max(120_000, (frames / fps) * 4000), () => {
    const n = captured();
    if (n >= frames) return n;
    if (Math.floor(n / 40) !== Math.floor(shown / 40)) say(`capture: ${n}/${frames} frames`);
    shown = n;
    return undefined;
  });
  say(`capture holds ${captured()} frames`);

  // The operator starts the job through the fleet's API.
  const recipe: Record<string, number> = { epochs: num('epochs', a.epochs)! };
  if (a.lr0 !== undefined) recipe.lr0 = num('lr0', a.lr0)!;
  if (a['pseudo-conf'] !== undefined) recipe.pseudoConf = num('pseudo-conf', a['pseudo-conf'])!;
  if (a['max-loss'] !== undefined) recipe.maxLoss = num('max-loss', a['max-loss'])!;
  if (a['min-gain'] !== undefined) recipe.minGain = num('min-gain', a['min-gain'])!;
  say(`POST /api/devices/${DEVICE}/adapt ${JSON.stringify({ jobId: JOB, recipe })}`);
  expectOk('start the adaptation job', await api('POST', `/api/devices/${DEVICE}/adapt`, { jobId: JOB, recipe, activate: true }));
  let lastLine = '';
  let printed = 0;
  const job = await until(`job ${JOB} to end`, num('timeout', a.timeout)! * 1000, async () => {
    const got = await api<AdaptJobDetail>('GET', `/api/devices/${DEVICE}/adapt-jobs/${JOB}`);
    if (got.status === 404) return undefined;
    const detail = expectOk(`job ${JOB}`, got);
    const j = detail.job;
    if (['training', 'evaluating'].includes(j.state)) keepCandidate();
    // Every state the fleet received, from its history: a poll can come after a quick stage has passed.
    for (const snapshot of detail.history.slice(printed)) {
      const line = describe(snapshot);
      if (line !== lastLine) say(line);
      lastLine = line;
    }
    printed = detail.history.length;
    return j.final ? j : undefined;
  });

  // After: the adapted student on the labelled sets (from the package it activated, else the candidate kept above).
  const adaptedKdw = job.version ? findPackageWeights(join(device, 'data'), job.version) : undefined;
  const candidate = join(root, 'adapted-candidate.kdw');
  const afterKdw = adaptedKdw ?? (existsSync(candidate) ? candidate : undefined);
  say(afterKdw ? `measuring the adapted student (${adaptedKdw ? 'the activated package\'s weights' : 'the rejected candidate, copied while the job evaluated'})` : 'no adapted weights to measure');
  const after = afterKdw ? { b: await kdVal(afterKdw, paths.bHoldout), a: await kdVal(afterKdw, paths.aData) } : undefined;
  const report = (() => {
    try {
      return JSON.parse(readFileSync(join(device, 'data', 'adapt', JOB, 'job', 'adapt.json'), 'utf8')) as {
        evaluation?: { holdout?: { instances?: number }; val?: { teacher?: Figures } };
        boxes?: { total?: number }; frames?: { used?: number }; replay?: { used?: number; boxes?: number; labelled?: number; labelBoxes?: number }; pseudoConf?: number;
      };
    } catch {
      return undefined;
    }
  })();

  // The table.
  const f = (x: { map50: number; map: number } | null | undefined): string => (x ? `${x.map50.toFixed(3).padStart(7)} ${x.map.toFixed(3).padStart(9)}` : `${'—'.padStart(7)} ${'—'.padStart(9)}`);
  const active = ctx.devices.get(DEVICE)?.activeModel;
  console.log('');
  console.log(`adaptation job ${JOB} on ${DEVICE}: ${job.state}${job.code ? ` ${job.code}` : ''}${job.message ? ` (${job.message})` : ''}`);
  console.log(`${''.padEnd(26)}${`hold-out: ${job.holdout?.images ?? '?'} frames`.padEnd(20)}${`val (a): ${job.val?.images ?? '?'} images`.padEnd(20)}${`b, labelled: ${before.studentB.images}`.padEnd(20)}${`a val: ${before.studentA.images}`.padEnd(18)}`);
  console.log(`${'model'.padEnd(26)}${'  mAP50  mAP50-95   '.repeat(4)}`);
  const row = (name: string, ho: Figures | null | undefined, val: Figures | null | undefined, b: Figures | undefined, av: Figures | undefined): void =>
    console.log(`${name.padEnd(26)}${f(ho)}   ${f(val)}   ${f(b)}   ${f(av)}`);
  row(`serving ${job.base.version}`, job.holdout?.before, job.val?.before, before.studentB, before.studentA);
  row(`adapted ${job.version ?? '(not packaged)'}`, job.holdout?.after, job.val?.after, after?.b, after?.a);
  row('teacher', null, report?.evaluation?.val?.teacher, before.teacherB, before.teacherA);
  console.log('hold-out: captured frames kept out of training, scored against the teacher\'s labels; val (a): the package\'s val/;');
  console.log('b, labelled and a val: kd-trainer val on sets the device never saw (b: the goal metric)');
  if (report?.boxes?.total !== undefined) {
    console.log(`teacher's pseudo-labels (score ≥ ${report.pseudoConf ?? '?'}): ${report.boxes.total} boxes on ${report.frames?.used ?? '?'} frames`
      + `${report.evaluation?.holdout?.instances !== undefined ? ` (${report.evaluation.holdout.instances} on the hold-out)` : ''}`
      + `${report.replay?.used ? `; replay: ${report.replay.used} images of domain a, ${report.replay.labelled ? `${report.replay.labelled} with their own labels (${report.replay.labelBoxes ?? '?'} boxes)` : ''}`
        + `${report.replay.used - (report.replay.labelled ?? 0) > 0 ? `${report.replay.labelled ? ', ' : ''}${report.replay.boxes ?? '?'} teacher boxes on the others` : ''}` : ''}`);
  }
  console.log('');
  console.log(`${job.accepted ? 'accepted' : 'not accepted'}${job.activated === true ? ' and activated' : job.activated === false ? ', not activated' : ''}:`);
  for (const reason of job.reasons) console.log(`  ${reason}`);
  console.log(`now active on ${DEVICE}: ${active ? `${active.name}@${active.version}` : 'none'}`);
  const fpsOf = (x: number | null | undefined): string => (x === null || x === undefined ? '—' : x.toFixed(1));
  console.log(`serving fps: ${fpsOf(job.serving?.fpsBefore)} before the job, ${fpsOf(job.serving?.fpsDuring)} during it (camera at ${fps} fps); peak RSS of the job ${job.peakRssMb ?? '—'} MiB`);
  if (after) {
    const gap = before.teacherB.map - before.studentB.map;
    const won = after.b.map - before.studentB.map;
    console.log(`b (labelled, never on the device) mAP50-95: student ${before.studentB.map.toFixed(3)} → adapted ${after.b.map.toFixed(3)}, teacher ${before.teacherB.map.toFixed(3)}: ${gap > 0 ? `${((100 * won) / gap).toFixed(0)} % of the gap to the teacher recovered (goal ≥ 50 %)` : 'no gap to recover (the teacher is not better on b)'}`);
  }
  console.log(`files: ${root} (the device: ${device}; its agent log: agent.log; the job: data/adapt/${JOB}/)`);
} catch (err) {
  console.error(`adapt-demo: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await shutdown();
  say('fleet and agent stopped');
}
