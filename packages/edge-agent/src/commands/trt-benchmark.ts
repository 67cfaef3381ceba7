import { join } from 'node:path';
import type { BenchMessage } from '@kd-edge/core';
import { buildBenchReport, benchResultFromTrtexec } from '../benchmark/bench-report.js';
import type { LoadedModel } from '../model/loaded-model.js';
import { benchmarkEngine } from '../runtime/trtexec-bench.js';
import { buildEngine } from '../runtime/trtexec-build.js';
import type { AgentServices } from './agent-services.js';

/**
 * Where trtexec exists and the package carries a TensorRT plan: builds the engine on this device (or
 * takes it from the engine cache, keyed by package, TensorRT version and GPU) from the plan and calibration
 * cache of this device's TensorRT version, and benchmarks it with trtexec. Returns the `bench` message of that
 * run, or undefined without trtexec or a plan. When the package has no cache for this TensorRT the engine is
 * fp16, and the report says so (`model.precision` fp16 and a `notes` line).
 */
export async function trtBenchmark(agent: AgentServices, loaded: LoadedModel, commandId: string | null): Promise<BenchMessage | undefined> {
  if (agent.trtexec === undefined || loaded.manifest.tensorrt === undefined) return undefined;
  const gpu = agent.gpuName ?? 'unknown-gpu';
  const engine = await buildEngine({
    trtexec: agent.trtexec,
    packageDir: loaded.stored.dir,
    packageSha256: loaded.stored.info.sha256,
    gpu,
    cacheDir: join(agent.config.dataDir, 'engines'),
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const perf = await benchmarkEngine({
    trtexec: agent.trtexec, enginePath: engine.enginePath, trtVersion: engine.trtVersion,
    iterations: agent.config.benchmark.iterations,
  });
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const [h, w] = loaded.detector.inputSize;
  const report = buildBenchReport({
    deviceId: agent.deviceId,
    commandId,
    model: {
      name: loaded.manifest.name, version: loaded.manifest.version, sha256: loaded.stored.info.sha256, file: engine.plan.engineFile,
      precision: engine.plan.precision === 'fp16' ? 'fp16' : 'int8',
    },
    runtime: 'tensorrt',
    executionProvider: `tensorrt ${engine.trtVersion}`,
    input: { name: loaded.runtime.inputs[0]!.name, shape: [1, 3, h, w] },
    result: benchResultFromTrtexec(perf, {
      warmup: 0, iterations: agent.config.benchmark.iterations,
      rssMb: process.memoryUsage().rss / 2 ** 20,
      // The agent only waits on trtexec; its own CPU share says little about the GPU run.
      cpuLoadPct: wall > 0 ? ((cpu.user + cpu.system) / 1000 / wall) * 100 : 0,
    }),
  });
  // The bench schema keeps extra fields: `notes` says what a reader of the figures must know.
  const notes = [`engine from ${engine.planFile} for TensorRT ${engine.trtVersion}`, ...(engine.fp16Fallback ? [engine.fp16Fallback] : [])];
  return { ...report, notes };
}
