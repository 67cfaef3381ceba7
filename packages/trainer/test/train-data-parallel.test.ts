import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../src/tf.js';
import { selectBackend } from '../src/backend/select.js';
import type { Batch } from '../src/data/types.js';
import { scaleLossHyp } from '../src/loss/yolo-loss.js';
import { yoloDescription } from '@kd-edge/core';
import { createYoloModel } from '../src/model/yolo.js';
import type { DetectionModel } from '../src/model/types.js';
import { GradientWorker, splitBatch } from '../src/train/data-parallel.js';
import { withBatchNormSync } from '../src/model/batch-norm-sync.js';
import { relErr } from './rel-err.js';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';
import { shardGradients, splitShard } from '../src/train/step.js';
import { validate } from '../src/val/validator.js';

function batchOf(n: number, size: number): Batch {
  const images = new Float32Array(n * size * size * 3).map((_, i) => ((i * 2654435761) % 1000) / 1000);
  const rows: number[] = [];
  for (let i = 0; i < n; i++) rows.push(i, i % 2, 0.3 + 0.1 * i, 0.5, 0.2, 0.3, i, 1, 0.7, 0.25, 0.15, 0.1);
  return {
    images, n, height: size, width: size, targets: Float32Array.from(rows), nTargets: rows.length / 6,
    files: [], shapes: [],
  };
}

describe('splitBatch', () => {
  it('splits images and renumbers target rows of the second half', () => {
    const b = batchOf(5, 32);
    const [a, c] = splitBatch(b);
    expect([a.n, c.n]).toEqual([3, 2]);
    expect(a.images.length).toBe(3 * 32 * 32 * 3);
    expect(c.images[0]).toBe(b.images[3 * 32 * 32 * 3]);
    expect(a.nTargets + c.nTargets).toBe(b.nTargets);
    expect([...c.targets].filter((_, k) => k % 6 === 0)).toEqual([0, 0, 1, 1]);
    expect(c.targets[2]).toBeCloseTo(0.3 + 0.1 * 3, 6);
  });
});

describe('GradientWorker (data-parallel replica)', () => {
  const desc = yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 2);
  const hyp = scaleLossHyp(HYP_SCRATCH_LOW, 3, 2, 64);
  let model: DetectionModel;
  let worker: GradientWorker;

  beforeAll(async () => {
    await selectBackend('wasm');
    model = createYoloModel(desc, { seed: 3 });
    worker = await GradientWorker.start(model, 'wasm', hyp);
  });
  afterAll(async () => {
    await worker?.close();
    model?.dispose();
  });

  it('with SyncBN, the two halves sum to the full batch gradient', async () => {
    const names = [...model.params.keys()];
    // Identical targets in every image: both halves get the same matches, so the YOLO loss splits exactly.
    const b = batchOf(4, 64);
    const same = Array.from({ length: 4 }, (_, i) => [i, 0, 0.4, 0.5, 0.2, 0.3, i, 1, 0.7, 0.25, 0.15, 0.1]).flat();
    b.targets = Float32Array.from(same);
    b.nTargets = same.length / 6;
    const full = shardGradients(model, names, b, hyp);
    const [mine, theirs] = splitBatch(b);
    const pending = worker.compute(model, theirs, true);
    const local = withBatchNormSync(worker.exchange, () => shardGradients(model, names, mine, hyp));
    await pending;
    const remote = worker.gradients();
    const sumErr = (x: Record<string, tf.Tensor>, y: Record<string, tf.Tensor>) =>
      Math.max(...names.map((n) => relErr(tf.add(x[n], y[n]).dataSync(), full.grads[n].dataSync())));
    const worst = sumErr(local.grads, remote);
    expect(worst).toBeLessThan(2e-3);
    // Without SyncBN the halves normalise with their own statistics and the sum differs.
    const pending2 = worker.compute(model, theirs, false);
    const local2 = shardGradients(model, names, mine, hyp);
    await pending2;
    const remote2 = worker.gradients();
    expect(sumErr(local2.grads, remote2)).toBeGreaterThan(10 * worst);
    tf.dispose([...Object.values(full.grads), ...Object.values(local.grads), ...Object.values(remote), ...Object.values(local2.grads), ...Object.values(remote2)]);
  });

  it('computes the same gradients as the main thread, and follows weight updates', async () => {
    const names = [...model.params.keys()];
    const shard = splitBatch(batchOf(4, 64))[1];
    for (let round = 0; round < 2; round++) {
      const remote = await worker.compute(model, shard);
      const theirs = worker.gradients();
      const local = shardGradients(model, names, shard, hyp);
      for (let k = 0; k < 3; k++) expect(remote[k]).toBeCloseTo(local.loss[k], 5);
      for (const n of names) {
        const a = local.grads[n].dataSync();
        const b = theirs[n].dataSync();
        const scale = Math.max(1e-6, ...Array.from(a, Math.abs));
        for (let i = 0; i < a.length; i += Math.max(1, Math.floor(a.length / 50))) expect(Math.abs(a[i] - b[i]) / scale).toBeLessThan(1e-4);
      }
      tf.dispose([...Object.values(local.grads), ...Object.values(theirs)]);
      // Change the weights: the replica must pick them up after invalidate().
      tf.tidy(() => { for (const v of model.params.values()) v.assign(v.mul(0.9)); });
      worker.invalidate();
    }
  });
});

describe('micro-batches and evaluation chunks', () => {
  const desc = yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 2);
  const hyp = scaleLossHyp(HYP_SCRATCH_LOW, 3, 2, 64);

  it('splitShard renumbers targets per part', () => {
    const parts = splitShard(batchOf(5, 32), 2);
    expect(parts.map((p) => p.n)).toEqual([2, 2, 1]);
    expect(parts.map((p) => p.nTargets)).toEqual([4, 4, 2]);
    for (const p of parts) for (let k = 0; k < p.nTargets; k++) expect(p.targets[k * 6]).toBeLessThan(p.n);
  });

  it('sums the gradients of micro-batches when a shard exceeds the pixel budget', async () => {
    await selectBackend('wasm');
    const model = createYoloModel(desc, { seed: 4 });
    const names = [...model.params.keys()];
    const whole = shardGradients(model, names, batchOf(4, 64), hyp, 64 * 64 * 2);
    const parts = splitShard(batchOf(4, 64), 2).map((p) => shardGradients(model, names, p, hyp));
    for (const n of names.slice(0, 20)) {
      const a = whole.grads[n].dataSync();
      const b = tf.add(parts[0].grads[n], parts[1].grads[n]).dataSync();
      for (let i = 0; i < a.length; i += Math.max(1, Math.floor(a.length / 20))) expect(a[i]).toBeCloseTo(b[i], 5);
    }
    expect(whole.loss[0]).toBeCloseTo((parts[0].loss[0] + parts[1].loss[0]) / 2, 6);
    tf.dispose([...Object.values(whole.grads), ...parts.flatMap((p) => Object.values(p.grads))]);
    model.dispose();
  });

  it('evaluation in chunks gives exactly the metrics of one pass', async () => {
    await selectBackend('wasm');
    const model = createYoloModel(desc, { seed: 4 });
    const batches = async function* () { yield batchOf(6, 64); yield batchOf(3, 64); };
    const seen: number[][][] = [];
    const keep = (_b: unknown, dets: { score: number }[][]) => { seen.push(dets.map((d) => d.map((x) => x.score))); };
    const one = await validate(model, batches(), { confThres: 0.0001, onFirstBatch: keep });
    const chunked = await validate(model, batches(), { confThres: 0.0001, maxPixels: 64 * 64 * 2, onFirstBatch: keep });
    expect(one.images).toBe(9);
    expect(seen[0].flat().length).toBeGreaterThan(0);
    expect(seen[1]).toEqual(seen[0]);
    expect(chunked.map).toBe(one.map);
    expect(chunked.map50).toBe(one.map50);
    expect(chunked.precision).toBe(one.precision);
    model.dispose();
  });
});
