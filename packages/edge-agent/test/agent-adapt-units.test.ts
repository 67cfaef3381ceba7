// The standalone parts of kd-agent's adaptation jobs, each with real processes and files: the kd-trainer child
// (argument array, JSON lines, exit codes, stderr tail, thread caps), the memory monitor, kd-trainer's location,
// the batch rule and the `adapt:` configuration.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { batchForBudget } from '../src/adapt/adapt-batch.js';
import { adaptChildArgs, adaptChildEnv, startAdaptChild, trainerErrorLine } from '../src/adapt/adapt-child.js';
import { parentPid, RssMonitor, vmRssKib } from '../src/adapt/rss-monitor.js';
import { locateTrainer } from '../src/adapt/trainer-command.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { inWindow } from '../src/adapt/adapt-jobs.js';

const root = mkdtempSync(join(tmpdir(), 'kd-agent-adapt-units-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// A stand-in for `kd-trainer adapt --json`: what it prints and how it exits is read from its own arguments.
const STANDIN = `
const args = process.argv.slice(1);
const opt = (k) => { const i = args.indexOf(k); return i < 0 ? undefined : args[i + 1]; };
const out = (v) => process.stdout.write(JSON.stringify(v) + '\\n');
const mode = opt('--mode');
if (mode === 'wait') process.on('SIGINT', () => { out({ cancelled: { status: 'cancelled', stage: 'train' } }); process.exit(130); });
process.stderr.write('log: starting ' + args[0] + ' threads=' + process.env.OMP_NUM_THREADS + '/' + process.env.UV_THREADPOOL_SIZE + ' nice=' + require('node:os').getPriority() + '\\n');
process.stdout.write('not json\\n{broken\\n');
out({ progress: { stage: 'label', done: 5, total: 10, boxes: 3 } });
out({ progress: { stage: 'train', epoch: 1, epochs: 2, losses: { box: 0.5 } } });
if (mode === 'wait') {
  setInterval(() => {}, 1000);
} else if (mode === 'error') {
  for (let i = 0; i < 80; i++) process.stderr.write('line ' + i + '\\n');
  process.stderr.write('kd-trainer: the capture holds 3 usable frames [ADAPT_TOO_FEW_FRAMES]\\n');
  process.exitCode = 2;
} else {
  out({ report: { accepted: mode !== 'reject', reasons: ['r'] } });
  process.exitCode = mode === 'reject' ? 3 : 0;
}
`;
const standin = [process.execPath, '-e', STANDIN];

describe('the kd-trainer adapt child', () => {
  it('builds an argument array with the job, the thread cap, the batch and only the recipe options given', () => {
    const args = adaptChildArgs({
      frames: '/cap ture', teacher: '/t/teacher.onnx', weights: '/w.kdw', out: '/j/job', val: '/j/val', threads: 2, batch: 4,
      recipe: { epochs: 3, pseudoConf: 0.4, timeBudgetSec: 60, minGain: -1 }, extraArgs: ['--backend', 'wasm'],
    });
    expect(args).toEqual([
      'adapt', '--backend', 'wasm', '--frames', '/cap ture', '--teacher', '/t/teacher.onnx', '--weights', '/w.kdw', '--out', '/j/job', '--val', '/j/val',
      '--json', '--threads', '2', '--batch', '4', '--epochs', '3', '--pseudo-conf', '0.4', '--time-budget', '60', '--min-gain', '-1',
    ]);
    expect(adaptChildArgs({ frames: 'f', teacher: 't', weights: 'w', out: 'o', threads: 1, batch: 16, recipe: {} })).not.toContain('--val');
  });

  it('caps the thread pools at the job\'s threads, keeping a smaller setting', () => {
    expect(adaptChildEnv(2, { UV_THREADPOOL_SIZE: '8', PATH: '/bin' })).toMatchObject({ UV_THREADPOOL_SIZE: '2', OMP_NUM_THREADS: '2', PATH: '/bin' });
    expect(adaptChildEnv(4, { OMP_NUM_THREADS: '1' })).toMatchObject({ OMP_NUM_THREADS: '1', UV_THREADPOOL_SIZE: '4' });
  });

  it('reads JSON lines only: progress in order, then the report; exit 0 and 3; niced, with the thread cap', async () => {
    const seen: Record<string, unknown>[] = [];
    const child = startAdaptChild({ trainer: standin, args: ['adapt', '--mode', 'accept'], nice: 10, threads: 1, onProgress: (p) => seen.push(p) });
    const exit = await child.done;
    expect(exit).toMatchObject({ exitCode: 0, signal: null, report: { accepted: true, reasons: ['r'] } });
    expect(seen.map((p) => p.stage)).toEqual(['label', 'train']);
    expect(exit.stderrTail).toEqual([`log: starting adapt threads=1/1 nice=${Math.min(19, getPriority() + 10)}`]);
    const rejected = await startAdaptChild({ trainer: standin, args: ['adapt', '--mode', 'reject'], nice: 0, threads: 3 }).done;
    expect(rejected).toMatchObject({ exitCode: 3, report: { accepted: false } });
    expect(rejected.stderrTail[0]).toBe(`log: starting adapt threads=3/3 nice=${getPriority()}`);
  });

  it('keeps the last stderr lines and the code of kd-trainer\'s error line (exit 2)', async () => {
    const exit = await startAdaptChild({ trainer: standin, args: ['adapt', '--mode', 'error'], nice: 0, threads: 1, tailLines: 10 }).done;
    expect(exit).toMatchObject({ exitCode: 2, code: 'ADAPT_TOO_FEW_FRAMES', message: 'the capture holds 3 usable frames' });
    expect(exit.stderrTail).toHaveLength(10);
    expect(exit.stderrTail.at(-2)).toBe('line 79');
    expect(trainerErrorLine(['kd-trainer: no code here'])).toBeUndefined();
  });

  it('SIGINT: the child says cancelled and exits 130; a child that cannot start ends with its reason', async () => {
    const child = startAdaptChild({ trainer: standin, args: ['adapt', '--mode', 'wait'], nice: 0, threads: 1, onProgress: (p) => { if (p.stage === 'train') child.signal('SIGINT'); } });
    const exit = await child.done;
    expect(exit).toMatchObject({ exitCode: 130, cancelled: { stage: 'train' } });
    expect(child.signal('SIGINT')).toBe(false);
    const none = await startAdaptChild({ trainer: [join(root, 'no-such-trainer')], args: ['adapt'], nice: 0, threads: 1 }).done;
    expect(none.exitCode).toBeNull();
    expect(none.stderrTail.join('\n')).toMatch(/cannot start .*no-such-trainer: .*ENOENT/);
  });
});

describe('the memory monitor', () => {
  it('parses VmRSS and the parent pid (a command name with spaces and parentheses)', () => {
    expect(vmRssKib('Name:\tnode\nVmRSS:\t  123456 kB\nThreads: 7\n')).toBe(123456);
    expect(vmRssKib('Name:\tkworker\n')).toBeUndefined();
    expect(parentPid('4242 (my (odd) cmd) S 17 4242 4242 0 -1')).toBe(17);
  });

  it('sums the resident memory of a process and its children, and keeps the peak', async () => {
    // A parent holding ~60 MiB that starts a child holding ~80 MiB: the tree is over 140 MiB, either alone is not.
    const hold = (mb: number): string => `const b = Buffer.alloc(${mb} * 1048576, 1); setInterval(() => b[0]++, 1000);`;
    const script = `${hold(60)} require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify(hold(80))}], { stdio: 'ignore' }); process.stdout.write('go\\n');`;
    const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await once(proc.stdout!, 'data');
      const samples: number[] = [];
      const m = new RssMonitor({ pid: proc.pid!, intervalMs: 50, onSample: ({ rssMb }) => samples.push(rssMb) });
      await expect.poll(async () => { await m.sample(); return (await m.tree()).length; }).toBe(2);
      await expect.poll(() => m.sample()).toBeGreaterThan(140);
      expect(m.peakMb).toBeGreaterThan(140);
      expect(samples.length).toBeGreaterThan(0);
    } finally {
      const tree = await new RssMonitor({ pid: proc.pid! }).tree();
      for (const pid of tree.reverse()) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
  });
});

describe('locating kd-trainer', () => {
  const pkg = (base: string): string => join(base, 'node_modules', '@kd-edge', 'trainer');
  it('takes adapt.trainer as it is, else the build, else the sources through tsx, else says how to install it', () => {
    expect(locateTrainer({ configured: ['/usr/bin/node', '/opt/t.js'] })).toEqual({ argv: ['/usr/bin/node', '/opt/t.js'], from: 'config' });
    const app = join(root, 'app', 'lib');
    mkdirSync(app, { recursive: true });
    expect(() => locateTrainer({ from: app })).toThrow(expect.objectContaining({ code: 'AGENT_ADAPT_UNAVAILABLE', message: expect.stringMatching(/npm install @kd-edge\/trainer/) }));
    const dir = pkg(join(root, 'app'));
    mkdirSync(join(dir, 'src', 'bin'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: '@kd-edge/trainer' }));
    writeFileSync(join(dir, 'src', 'bin', 'kd-trainer.ts'), '');
    // Sources run through tsx, found from the package and named by its absolute URL (the child runs in the job's folder).
    const tsx = join(root, 'app', 'node_modules', 'tsx');
    mkdirSync(tsx, { recursive: true });
    writeFileSync(join(tsx, 'package.json'), JSON.stringify({ name: 'tsx', exports: { '.': './loader.mjs' } }));
    writeFileSync(join(tsx, 'loader.mjs'), '');
    expect(locateTrainer({ from: app, node: '/n' })).toEqual({ argv: ['/n', '--conditions=source', '--import', `file://${join(tsx, 'loader.mjs')}`, join(dir, 'src', 'bin', 'kd-trainer.ts')], from: 'source' });
    mkdirSync(join(dir, 'dist', 'bin'), { recursive: true });
    writeFileSync(join(dir, 'dist', 'bin', 'kd-trainer.js'), '');
    expect(locateTrainer({ from: app, node: '/n' })).toEqual({ argv: ['/n', join(dir, 'dist', 'bin', 'kd-trainer.js')], from: 'dist' });
    expect(locateTrainer({ from: app, node: '/n', preferSource: true }).from).toBe('source');
  });
});

describe('the batch a memory budget allows', () => {
  it('is (budget − base) / per-image memory, at most 16, and refuses a budget below one image', () => {
    expect(batchForBudget({ budgetMb: undefined, baseMb: 450, imgsz: 320 })).toEqual({ batch: 16, perImageMb: 100 });
    expect(batchForBudget({ budgetMb: 1024, baseMb: 450, imgsz: 320 }).batch).toBe(5);
    expect(batchForBudget({ budgetMb: 8192, baseMb: 450, imgsz: 320 }).batch).toBe(16);
    expect(batchForBudget({ budgetMb: 454, baseMb: 450, imgsz: 64 }).batch).toBe(1);
    expect(() => batchForBudget({ budgetMb: 512, baseMb: 450, imgsz: 640 })).toThrow(expect.objectContaining({
      code: 'AGENT_ADAPT_MEMORY_TOO_SMALL', message: expect.stringMatching(/512 MiB .* at least 850 MiB/),
    }));
  });
});

describe('the adapt: configuration', () => {
  const base = { keys: ['k.pub'], deviceId: 'cam-01' };
  it('fills the defaults and takes the recipe defaults', () => {
    const c = validateAgentConfig({ ...base, adapt: { epochs: 5, teacher: 'big-teacher@1.0.0+b.1', gates: { minMap50: 0.3 } } });
    expect(c.adapt).toMatchObject({ nice: 10, threads: 1, minFrames: 100, keepJobs: 10, memoryBaseMb: 450, extraArgs: [], epochs: 5, teacher: 'big-teacher@1.0.0+b.1', gates: { minMap50: 0.3 } });
    expect(validateAgentConfig(base).adapt.memoryBudgetMb).toBeUndefined();
    expect(validateAgentConfig({ ...base, adapt: { schedule: { window: '22:00-05:00' } } }).adapt.schedule).toEqual({ window: '22:00-05:00', everyHours: 24, activate: true });
  });

  it('names the field and what is allowed for each bad value', () => {
    const bad = (adapt: Record<string, unknown>): unknown => validateAgentConfig({ ...base, adapt });
    expect(() => bad({ teacher: 'teacher' })).toThrow(/adapt\.teacher: expected name@version/);
    expect(() => bad({ extraArgs: ['--backend', 'wasm', '--out', '/x'] })).toThrow(/adapt\.extraArgs: must not set --frames, .*--out/);
    expect(() => bad({ nice: 20 })).toThrow(/adapt\.nice/);
    expect(() => bad({ memoryBudgetMb: 10 })).toThrow(/adapt\.memoryBudgetMb/);
    expect(() => bad({ schedule: { window: '25:00-01:00' } })).toThrow(/adapt\.schedule\.window: HH:MM-HH:MM/);
    expect(() => bad({ scheduled: true })).toThrow(/adapt: Unrecognized key: "scheduled"/);
    expect(() => bad({ trainer: [] })).toThrow(/adapt\.trainer/);
  });
});

describe('the schedule window', () => {
  const at = (hh: number, mm: number): Date => new Date(2026, 11, 7, hh, mm);
  it('is local time, start included and end excluded, wraps past midnight, and equal ends mean all day', () => {
    expect([at(0, 59), at(1, 0), at(4, 59), at(5, 0)].map((d) => inWindow('01:00-05:00', d))).toEqual([false, true, true, false]);
    expect([at(21, 59), at(22, 0), at(2, 0), at(5, 0)].map((d) => inWindow('22:00-05:00', d))).toEqual([false, true, true, false]);
    expect(inWindow('03:00-03:00', at(17, 30))).toBe(true);
    expect(() => inWindow('3-5', at(1, 0))).toThrow(RangeError);
  });
});
