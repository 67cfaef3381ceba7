/**
 * Training-step benchmark: yolov5n at 128 px, batch 16 (SPECS.md section 8's reference setting), on
 * every backend that loads here, plus validation throughput. Prints figures; asserts nothing.
 * Run: npm run bench (from the repository root or packages/trainer).
 *
 * Environment: BENCH_IMGSZ ("128", or several: "128 640"), BENCH_BATCH, BENCH_STEPS, BENCH_BACKENDS,
 * BENCH_REPLICAS ("2 4"), BENCH_PROFILE (1 | shapes). Side by side with ultralytics: BENCH_YOLOV5=<the
 * ultralytics YOLOv5 v7.0 source tree> runs bench/reference/ultralytics_step.py (BENCH_PYTHON, default
 * /usr/bin/python3 with PyTorch) at the same size, batch and thread count after each figure, and
 * prints the ratio.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '../src/tf.js';
import { selectBackend } from '../src/backend/select.js';
import { scaleLossHyp } from '../src/loss/yolo-loss.js';
import type { Batch } from '../src/data/types.js';
import { canSyncBatchNorm, ReplicaPool, splitBatch } from '../src/train/data-parallel.js';
import { shardGradients } from '../src/train/step.js';
import { createYoloModel } from '../src/model/yolo.js';
import { yoloDescription } from '@kd-edge/core';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';
import { NesterovSgd } from '../src/train/sgd.js';

const IMGSZS = (process.env.BENCH_IMGSZ ?? '128').split(/[\s,]+/).filter(Boolean).map(Number);
const YOLOV5 = process.env.BENCH_YOLOV5;
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const BATCH_ALL = Number(process.env.BENCH_BATCH ?? 16);
const STEPS = Number(process.env.BENCH_STEPS ?? 5);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'tensorflow-gpu,tensorflow,wasm,cpu').split(',');
const NC = 6;

function syntheticTargets(n: number): Float32Array {
  const rows: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 4; k++) rows.push(i, k % NC, 0.2 + 0.2 * k, 0.3 + 0.1 * k, 0.05 + 0.05 * k, 0.08 + 0.04 * k);
  }
  return Float32Array.from(rows);
}

/** ms per ultralytics training step at this size, batch and thread count (null when not asked for). */
function torchStep(imgsz: number, batch: number, threads: number, steps: number): number | null {
  if (!YOLOV5) return null;
  const script = fileURLToPath(new URL('./reference/ultralytics_step.py', import.meta.url));
  const r = spawnSync(PYTHON, [script, '--yolov5', YOLOV5, '--imgsz', String(imgsz), '--batch', String(batch),
    '--threads', String(threads), '--steps', String(steps)], {
    encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) },
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{')) {
    console.log(`  ultralytics reference failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
    return null;
  }
  return (JSON.parse(line) as { ms: number }).ms;
}

function ratioLine(ours: number, imgsz: number, batch: number, threads: number, steps: number): void {
  const ref = torchStep(imgsz, batch, threads, steps);
  if (ref === null) return;
  console.log(`${'ultralytics'.padEnd(15)} train step ${ref.toFixed(0).padStart(6)} ms  ${(batch / (ref / 1000)).toFixed(1).padStart(6)} img/s  (PyTorch CPU, ${threads} thread${threads > 1 ? 's' : ''}); kd-trainer/ultralytics = ${(ours / ref).toFixed(2)}×`);
}

async function benchBackend(name: string, IMGSZ: number): Promise<void> {
  try {
    await selectBackend(name as 'wasm');
  } catch (e) {
    console.log(`${name.padEnd(15)} not available: ${(e as Error).message.split('\n')[1]?.replace(/^\s*- /, '') ?? (e as Error).message}`);
    return;
  }
  // The cpu backend is a plain-JavaScript reference: one small step tells its speed without taking minutes.
  const cpu = name === 'cpu';
  const BATCH = cpu ? Number(process.env.BENCH_CPU_BATCH ?? 2) : BATCH_ALL;
  const model = createYoloModel(yoloDescription('n', NC), { seed: 0 });
  const opt = new NesterovSgd(model.params, 0.01, 0.937, 0.0005);
  const hyp = scaleLossHyp(HYP_SCRATCH_LOW, 3, NC, IMGSZ);
  const images = new Float32Array(BATCH * IMGSZ * IMGSZ * 3).map((_, i) => (i * 7919 % 255) / 255);
  const targets = syntheticTargets(BATCH);
  const names = [...model.params.keys()];
  const steps = cpu ? 1 : STEPS;
  const times: number[] = [];
  let profiled: Awaited<ReturnType<typeof tf.profile>> | undefined;
  for (let s = cpu ? 1 : 0; s <= steps; s++) {
    const t0 = performance.now();
    const run = () => {
      const batch = { images, n: BATCH, height: IMGSZ, width: IMGSZ, targets, nTargets: targets.length / 6 };
      const { grads } = shardGradients(model, names, batch, hyp);
      opt.step(grads);
      tf.dispose(Object.values(grads));
    };
    if (s === 1 && process.env.BENCH_PROFILE) profiled = await tf.profile(run);
    else run();
    if (s > 0) times.push(performance.now() - t0); // step 0 is warm-up
  }
  const ms = times.reduce((a, b) => a + b, 0) / times.length;
  // Peak resident memory of the whole process so far: one replica (the bench's only earlier work is
  // smaller sizes, whose peak this one exceeds).
  const peakOne = process.resourceUsage().maxRSS * 1024;
  console.log(`${name.padEnd(15)} train step ${ms.toFixed(0).padStart(6)} ms  ${(BATCH / (ms / 1000)).toFixed(1).padStart(6)} img/s  (yolov5n ${IMGSZ}px batch ${BATCH}, ${cpu ? 'one step, no warm-up' : `mean of ${times.length}`}; peak RSS ${(peakOne / 2 ** 20).toFixed(0)} MiB)`);
  if (name === 'wasm') ratioLine(ms, IMGSZ, BATCH, 1, steps);
  if (profiled) {
    const byKernel = new Map<string, number>();
    for (const k of profiled.kernels) byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + (k.kernelTimeMs as number));
    const total = [...byKernel.values()].reduce((a, b) => a + b, 0);
    for (const [k, t] of [...byKernel].sort((a, b) => b[1] - a[1]).slice(0, 10)) console.log(`    ${k.padEnd(28)} ${t.toFixed(0).padStart(6)} ms ${(100 * t / total).toFixed(1).padStart(5)} %`);
    if (process.env.BENCH_PROFILE === 'shapes') {
      const byShape = new Map<string, number>();
      for (const k of profiled.kernels) {
        if (!k.name.startsWith('Conv2D')) continue;
        const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
        byShape.set(key, (byShape.get(key) ?? 0) + (k.kernelTimeMs as number));
      }
      for (const [k, t] of [...byShape].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`      ${t.toFixed(1).padStart(6)} ms  ${k}`);
    }
  }
  // Validation throughput: eval-mode forward + read-back, batch 32.
  const vb = cpu ? BATCH : Math.min(32, Math.max(1, Math.floor(4_500_000 / (IMGSZ * IMGSZ))));
  const vimg = new Float32Array(vb * IMGSZ * IMGSZ * 3).fill(0.5);
  const vt: number[] = [];
  for (let s = cpu ? 3 : 0; s <= 3; s++) {
    const t0 = performance.now();
    const outs = tf.tidy(() => model.forward(tf.tensor4d(vimg, [vb, IMGSZ, IMGSZ, 3]), false));
    await Promise.all(outs.map((o) => o.data()));
    tf.dispose(outs);
    if (s > 0) vt.push(performance.now() - t0);
  }
  const vms = vt.reduce((a, b) => a + b, 0) / vt.length;
  // Data parallel: N replicas (main thread + N − 1 workers), one shard each, SyncBN, gradients reduce-scattered
  // in shared memory (what `kd-trainer train --threads N` does on wasm/cpu). BENCH_REPLICAS="2 4" by default.
  if (name === 'wasm') {
    const rssOne = process.memoryUsage().rss;
    const batch: Batch = { images, n: BATCH, height: IMGSZ, width: IMGSZ, targets, nTargets: targets.length / 6, files: [], shapes: [] };
    for (const ranks of (process.env.BENCH_REPLICAS ?? '2 4').split(/[\s,]+/).map(Number).filter((n) => n > 1 && n <= BATCH)) {
      const pool = await ReplicaPool.start(model, 'wasm', hyp, ranks, names);
      const dp: number[] = [];
      for (let s = 0; s <= steps; s++) {
        const t0 = performance.now();
        const shards = splitBatch(batch, ranks);
        const r = await pool.step(model, shards, canSyncBatchNorm(shards), shards.map(() => undefined), () => shardGradients(model, names, shards[0]!, hyp));
        opt.step(r.grads);
        pool.invalidate();
        tf.dispose(Object.values(r.grads));
        if (s > 0) dp.push(performance.now() - t0);
      }
      // The process's resident memory with the pool up: the main replica's share was measured before it started.
      const rss = process.memoryUsage().rss;
      await pool.close();
      const dms = dp.reduce((a, b) => a + b, 0) / dp.length;
      const eff = (ms / dms) / ranks;
      const perReplica = (rss - rssOne) / (ranks - 1) / 2 ** 20;
      console.log(`${`wasm x${ranks} threads`.padEnd(15)} train step ${dms.toFixed(0).padStart(6)} ms  ${(BATCH / (dms / 1000)).toFixed(1).padStart(6)} img/s  (${ranks} replicas with SyncBN; scaling efficiency ${(100 * eff).toFixed(0)} % of ${ranks}× one thread; ${perReplica.toFixed(0)} MiB RSS per worker replica)`);
      ratioLine(dms, IMGSZ, BATCH, ranks, steps);
    }
  }
  console.log(`${name.padEnd(15)} val forward ${(vb / (vms / 1000)).toFixed(1).padStart(6)} img/s (batch ${vb})`);
  opt.dispose();
  model.dispose();
}

console.log(`kd-trainer bench: node ${process.version}, ${(await import('node:os')).cpus().length} cores`);
if (!YOLOV5) console.log('(set BENCH_YOLOV5=<ultralytics YOLOv5 v7.0 source> to time ultralytics/PyTorch side by side)');
for (const imgsz of IMGSZS) for (const b of BACKENDS) await benchBackend(b, imgsz);
