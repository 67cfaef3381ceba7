import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../src/tf.js';
import { selectBackend } from '../src/backend/select.js';
import type { Batch } from '../src/data/types.js';
import { scaleLossHyp } from '../src/loss/yolo-loss.js';
import { yoloDescription } from '@kd-edge/core';
import { createYoloModel } from '../src/model/yolo.js';
import type { DetectionModel } from '../src/model/types.js';
import { canSyncBatchNorm, defaultReplicas, MIN_PIXELS_PER_REPLICA, ReplicaPool, splitBatch } from '../src/train/data-parallel.js';
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
  it('splits images into N shards as evenly as possible and renumbers their target rows', () => {
    const b = batchOf(5, 32);
    const [a, c] = splitBatch(b, 2);
    expect([a!.n, c!.n]).toEqual([3, 2]);
    expect(a!.images.length).toBe(3 * 32 * 32 * 3);
    expect(c!.images[0]).toBe(b.images[3 * 32 * 32 * 3]);
    expect(a!.nTargets + c!.nTargets).toBe(b.nTargets);
    expect([...c!.targets].filter((_, k) => k % 6 === 0)).toEqual([0, 0, 1, 1]);
    expect(c!.targets[2]).toBeCloseTo(0.3 + 0.1 * 3, 6);
    expect(splitBatch(b, 4).map((x) => x.n)).toEqual([2, 1, 1, 1]);
    // Fewer images than replicas: the last shards are empty.
    const three = splitBatch(batchOf(3, 32), 4);
    expect(three.map((x) => x.n)).toEqual([1, 1, 1, 0]);
    expect(three[3]!.nTargets).toBe(0);
    expect(canSyncBatchNorm(three)).toBe(false);
    expect(canSyncBatchNorm(splitBatch(batchOf(4, 32), 4))).toBe(true);
  });

  it('defaults to one replica per core only where each replica gets enough pixels a step', () => {
    expect(defaultReplicas(2, 16, 128)).toBe(1); // 262K pixels: one replica's work
    expect(defaultReplicas(2, 16, 256)).toBe(2);
    expect(defaultReplicas(16, 16, 640)).toBe(16);
    expect(defaultReplicas(16, 8, 640)).toBe(8); // never more than the step's images
    expect(defaultReplicas(16, 64, 128)).toBe(4); // 1M pixels: four replicas of 262K
    expect(defaultReplicas(1, 64, 640)).toBe(1);
    expect(defaultReplicas(8, 1, 32)).toBe(1);
    expect(MIN_PIXELS_PER_REPLICA).toBeGreaterThan(0);
  });
});

/** Identical targets in every image: every shard gets the same matches, so the YOLO loss splits exactly. */
function evenBatch(n: number): Batch {
  const b = batchOf(n, 64);
  const same = Array.from({ length: n }, (_, i) => [i, 0, 0.4, 0.5, 0.2, 0.3, i, 1, 0.7, 0.25, 0.15, 0.1]).flat();
  b.targets = Float32Array.from(same);
  b.nTargets = same.length / 6;
  return b;
}

describe.each([3, 4])('ReplicaPool with %i replicas (main thread + workers)', (ranks) => {
  const desc = yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 2);
  const hyp = scaleLossHyp(HYP_SCRATCH_LOW, 3, 2, 64);
  let model: DetectionModel;
  let reference: DetectionModel;
  let pool: ReplicaPool;
  let names: string[];

  beforeAll(async () => {
    await selectBackend('wasm');
    model = createYoloModel(desc, { seed: 3 });
    reference = createYoloModel(desc, { seed: 3 });
    names = [...model.params.keys()];
    pool = await ReplicaPool.start(model, 'wasm', hyp, ranks, names);
  }, 120_000);
  afterAll(async () => {
    await pool?.close();
    model?.dispose();
    reference?.dispose();
  });

  const step = (b: Batch, syncBn: boolean) => {
    const shards = splitBatch(b, ranks);
    return pool.step(model, shards, syncBn, shards.map(() => undefined), () => shardGradients(model, names, shards[0]!, hyp));
  };
  const worstErr = (x: Record<string, tf.Tensor>, y: Record<string, tf.Tensor>) => Math.max(...names.map((n) => relErr(x[n]!.dataSync(), y[n]!.dataSync())));

  it('with SyncBN, the replicas\' summed gradients and BatchNorm statistics are the full batch\'s', async () => {
    const b = evenBatch(2 * ranks);
    const full = shardGradients(reference, names, b, hyp);
    const r = await step(b, true);
    const worst = worstErr(r.grads, full.grads);
    expect(worst).toBeLessThan(2e-3);
    // Running statistics moved by the same full-batch moments in the main replica and the one-pass reference.
    for (const n of ['model.0.bn.running_mean', 'model.8.cv3.bn.running_var', 'model.23.cv3.bn.running_mean']) {
      expect(relErr(model.buffers.get(n)!.dataSync(), reference.buffers.get(n)!.dataSync()), n).toBeLessThan(1e-4);
    }
    expect(r.losses).toHaveLength(ranks);
    // Without SyncBN each replica normalises with its own statistics and the sum differs.
    const local = await step(b, false);
    expect(worstErr(local.grads, full.grads)).toBeGreaterThan(10 * worst);
    tf.dispose([...Object.values(full.grads), ...Object.values(r.grads), ...Object.values(local.grads)]);
  });

  it('an uneven last batch (fewer images than replicas) sums the shards it has', async () => {
    const b = evenBatch(ranks - 1);
    const shards = splitBatch(b, ranks);
    expect(shards.at(-1)!.n).toBe(0);
    const parts = shards.filter((x) => x.n > 0).map((x) => shardGradients(model, names, x, hyp));
    const r = await pool.step(model, shards, canSyncBatchNorm(shards), shards.map(() => undefined), () => shardGradients(model, names, shards[0]!, hyp));
    const summed = Object.fromEntries(names.map((n) => [n, tf.addN(parts.map((p) => p.grads[n]!))]));
    expect(worstErr(r.grads, summed)).toBeLessThan(1e-4);
    expect(r.losses.at(-1)).toEqual([]);
    tf.dispose([...Object.values(r.grads), ...Object.values(summed), ...parts.flatMap((p) => Object.values(p.grads))]);
  });

  it('follows weight updates after invalidate()', async () => {
    const b = evenBatch(ranks);
    const before = await step(b, false);
    tf.tidy(() => { for (const v of model.params.values()) v.assign(v.mul(0.9)); });
    pool.invalidate();
    const shards = splitBatch(b, ranks);
    const after = await step(b, false);
    const expected = shards.map((x) => shardGradients(model, names, x, hyp));
    const summed = Object.fromEntries(names.map((n) => [n, tf.addN(expected.map((p) => p.grads[n]!))]));
    expect(worstErr(after.grads, summed)).toBeLessThan(1e-4);
    expect(worstErr(after.grads, before.grads)).toBeGreaterThan(1e-3);
    tf.dispose([...Object.values(before.grads), ...Object.values(after.grads), ...Object.values(summed), ...expected.flatMap((p) => Object.values(p.grads))]);
  });

  it('a replica that throws stops the step with its error, not a hang (even inside SyncBN)', async () => {
    const b = evenBatch(ranks);
    const shards = splitBatch(b, ranks);
    // A job for an extra loss the replica was not started with: it throws inside its pass.
    const jobs = shards.map((_, i) => (i === 1 ? { bogus: true } : undefined));
    await expect(pool.step(model, shards, true, jobs, () => shardGradients(model, names, shards[0]!, hyp)))
      .rejects.toThrow(/replica 1: a job with an extra loss, but no extra-loss module/);
  }, 60_000);
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
