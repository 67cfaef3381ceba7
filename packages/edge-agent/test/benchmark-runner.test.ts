import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BenchError } from '../src/benchmark/bench-error.js';
import { benchResultFromTrtexec, buildBenchReport } from '../src/benchmark/bench-report.js';
import type { BenchMessage } from '@kd-edge/core';
import { runBenchmark } from '../src/benchmark/benchmark-runner.js';
import type { BenchmarkResult } from '../src/benchmark/benchmark-runner.js';
import { OrtRuntime } from '../src/runtime/ort-runtime.js';
import { parseTrtexecPerformance } from '../src/runtime/trtexec-report.js';
import { tinyModel } from './fixtures/tiny-model.js';

const TEGRASTATS = fileURLToPath(new URL('./fixtures/tegrastats-standin.mjs', import.meta.url));
const MODEL = { name: 'tiny-det', version: '1.2.0', sha256: 'b'.repeat(64), file: 'model.onnx', precision: 'fp32' as const };
let dir: string;

function expectConsistent(r: BenchmarkResult | BenchMessage, iterations: number): void {
  const l = r.latencyMs;
  expect(r.iterations).toBe(iterations);
  expect(l.min).toBeLessThanOrEqual(l.p50);
  expect(l.p50).toBeLessThanOrEqual(l.p90);
  expect(l.p90).toBeLessThanOrEqual(l.p95);
  expect(l.p95).toBeLessThanOrEqual(l.p99);
  expect(l.p99).toBeLessThanOrEqual(l.max);
  expect(l.min).toBeLessThanOrEqual(l.mean);
  expect(l.mean).toBeLessThanOrEqual(l.max);
  for (const v of [...Object.values(l), ...Object.values(r.splitMs), r.throughputFps, r.rssMb, r.cpuLoadPct]) {
    expect(Number.isFinite(v)).toBe(true);
    expect(v).toBeGreaterThanOrEqual(0);
  }
  expect(r.cpuLoadPct).toBeLessThanOrEqual(100);
  expect(r.rssMb).toBeGreaterThan(0);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-bench-runner-'));
  await writeFile(join(dir, 'tiny.onnx'), tinyModel());
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('runBenchmark', () => {
  it('benchmarks a real ONNX Runtime session with a pre/infer/post split and builds a consistent bench message', async () => {
    const rt = await OrtRuntime.load(join(dir, 'tiny.onnx'), { executionProviders: ['cpu'] });
    const dims = [1, 4];
    let warmupsSeen = 0;
    let decoded = 0;
    try {
      const result = await runBenchmark(
        async (ctx) => {
          if (ctx.warmup) warmupsSeen++;
          const x = await ctx.time('pre', () => Float32Array.from({ length: 4 }, (_, i) => i - ctx.iteration));
          const out = await ctx.time('infer', () => rt.run(x, dims));
          await ctx.time('post', () => {
            decoded += (out.y!.data as Float32Array).length;
          });
        },
        { warmup: 3, iterations: 40 },
      );
      expect(warmupsSeen).toBe(3);
      expect(decoded).toBe(43 * 4);
      expectConsistent(result, 40);
      expect(result.warmup).toBe(3);
      expect(result.batch).toBe(1);
      expect(result.tegrastats).toBeUndefined();
      // The split is a part of each step's wall time.
      const split = result.splitMs.pre + result.splitMs.infer + result.splitMs.post;
      expect(split).toBeLessThanOrEqual(result.latencyMs.mean + 0.01);
      expect(split).toBeGreaterThanOrEqual(result.latencyMs.mean * 0.99 - 0.01);

      const msg = buildBenchReport({
        deviceId: 'dev-1', commandId: 'cmd-7', ts: new Date(0), model: MODEL, runtime: 'onnxruntime',
        executionProvider: rt.executionProvider, input: { name: rt.input.name, shape: dims }, result,
      });
      expect(msg).toMatchObject({
        v: 1, type: 'bench', deviceId: 'dev-1', commandId: 'cmd-7', ts: '1970-01-01T00:00:00.000Z', model: MODEL,
        runtime: 'onnxruntime', executionProvider: 'cpu', input: { name: 'x', shape: [1, 4] }, batch: 1, warmup: 3, iterations: 40,
      });
      expect(Object.keys(msg).sort()).toEqual([
        'batch', 'commandId', 'cpuLoadPct', 'deviceId', 'executionProvider', 'input', 'iterations', 'latencyMs', 'model',
        'rssMb', 'runtime', 'splitMs', 'throughputFps', 'ts', 'type', 'v', 'warmup',
      ]);
      expect(JSON.parse(JSON.stringify(msg))).toEqual(msg);
      expectConsistent(msg, 40);
    } finally {
      await rt.dispose();
    }
  });

  it('takes timings returned by the step, and counts unattributed time as infer', async () => {
    const given = await runBenchmark(() => ({ pre: 1, infer: 2, post: 3 }), { warmup: 0, iterations: 5, batch: 4 });
    expect(given.splitMs).toEqual({ pre: 1, infer: 2, post: 3 });
    expect(given.batch).toBe(4);
    const plain = await runBenchmark(async () => {
      await new Promise((r) => setImmediate(r));
    }, { warmup: 1, iterations: 5 });
    expect(plain.splitMs.pre).toBe(0);
    expect(plain.splitMs.post).toBe(0);
    expect(plain.splitMs.infer).toBeGreaterThan(0);
    expectConsistent(plain, 5);
  });

  it('wraps a failing step in BENCH_STEP_FAILED naming the run, and honours abort', async () => {
    const err = await runBenchmark((ctx) => {
      if (ctx.iteration === 4) throw new Error('boom');
    }, { warmup: 2, iterations: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BenchError);
    expect(err).toMatchObject({ code: 'BENCH_STEP_FAILED', iteration: 4 });
    expect((err as Error).message).toContain('boom');
    const ac = new AbortController();
    ac.abort();
    await expect(runBenchmark(() => {}, { signal: ac.signal })).rejects.toMatchObject({ code: 'BENCH_ABORTED' });
    await expect(runBenchmark(() => {}, { iterations: 0 })).rejects.toThrow(/iterations/);
  });

  it('attaches tegrastats means when a monitor runs, and the report carries them', async () => {
    // About a second of measured runs at a 20 ms interval: the stand-in has time to start and print.
    const result = await runBenchmark(async () => {
      await new Promise((r) => setTimeout(r, 10));
    }, { warmup: 0, iterations: 100, tegrastats: { path: TEGRASTATS, intervalMs: 20 } });
    const t = result.tegrastats!;
    expect(t.samples).toBeGreaterThan(0);
    expect(t.powerMw).toHaveProperty('POM_5V_IN');
    expect(t.totalPowerMw).toBeGreaterThanOrEqual(1750);
    const msg = buildBenchReport({
      deviceId: 'nano-1', model: MODEL, runtime: 'onnxruntime', executionProvider: 'cpu', input: { name: 'x', shape: [1, 4] }, result,
    });
    expect(msg.tegrastats).toEqual(t);
    expect(buildBenchReport({ deviceId: 'nano-1', model: MODEL, runtime: 'onnxruntime', executionProvider: 'cpu',
      input: { name: 'x', shape: [1, 4] }, result: { ...result, tegrastats: { samples: 0, powerMw: {}, tempC: {} } } })).not.toHaveProperty('tegrastats');
    // No tegrastats on this machine: no figures, no error.
    const none = await runBenchmark(() => {}, { iterations: 2, tegrastats: { path: join(dir, 'absent') } });
    expect(none.tegrastats).toBeUndefined();
  });
});

describe('benchResultFromTrtexec', () => {
  it('maps a trtexec summary into the bench message shape', () => {
    const perf = parseTrtexecPerformance(
      [
        '[I] === Performance summary ===',
        '[I] Throughput: 200 qps',
        '[I] Latency: min = 4 ms, max = 6 ms, mean = 5 ms, median = 4.9 ms, percentile(99%) = 5.5 ms',
        '[I] H2D Latency: min = 0.2 ms, max = 0.3 ms, mean = 0.25 ms, median = 0.25 ms, percentile(99%) = 0.3 ms',
        '[I] GPU Compute Time: min = 3.5 ms, max = 5.5 ms, mean = 4.6 ms, median = 4.5 ms, percentile(99%) = 5 ms',
        '[I] D2H Latency: min = 0.03 ms, max = 0.05 ms, mean = 0.04 ms, median = 0.04 ms, percentile(99%) = 0.05 ms',
        '[I] Total Host Walltime: 3 s',
      ].join('\n'),
    );
    const result = benchResultFromTrtexec(perf, { warmup: 200, iterations: 100, rssMb: 50, cpuLoadPct: 12 });
    expect(result.iterations).toBe(600);
    expect(result.splitMs).toEqual({ pre: 0.25, infer: 4.6, post: 0.04 });
    expect(result.latencyMs).toEqual({ min: 4, mean: 5, p50: 4.9, p90: 5.5, p95: 5.5, p99: 5.5, max: 6 });
    const msg = buildBenchReport({
      deviceId: 'orin-1', commandId: null, model: MODEL, runtime: 'tensorrt', executionProvider: 'tensorrt',
      input: { name: 'images', shape: [1, 3, 320, 320] }, result,
    });
    expect(msg).toMatchObject({ runtime: 'tensorrt', commandId: null, throughputFps: 200, iterations: 600 });
    expectConsistent(msg, 600);
  });
});
