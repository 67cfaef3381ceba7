import type { BenchMessage } from '@kd-edge/core';
import { buildBenchReport } from '../benchmark/bench-report.js';
import { runBenchmark } from '../benchmark/benchmark-runner.js';
import type { OnDeviceAccuracy } from './on-device-accuracy.js';
import type { LoadedModel } from './loaded-model.js';

/** Options of {@link benchmarkModel}. */
export interface ModelBenchmarkOptions {
  deviceId: string;
  commandId?: string | null;
  warmup: number;
  iterations: number;
  /** Sample tegrastats when it exists (Jetson). */
  tegrastats?: boolean;
  accuracy?: OnDeviceAccuracy;
}

/**
 * Benchmarks the agent's own inference path (letterbox, the runtime that serves: the TensorRT runner or ONNX
 * Runtime, decode and NMS) on a synthetic
 * frame of the model's input size, and returns the protocol's `bench` message.
 */
export async function benchmarkModel(loaded: LoadedModel, options: ModelBenchmarkOptions): Promise<BenchMessage> {
  const [h, w] = loaded.detector.inputSize;
  // A mid-grey frame with a gradient: decoding cost does not depend on content, NMS nearly not.
  const data = Buffer.alloc(w * h * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const frame = { data, width: w, height: h, channels: 3 as const };
  const result = await runBenchmark(async () => {
    const r = await loaded.detector.detect(frame);
    return { pre: r.timings.preMs, infer: r.timings.inferMs, post: r.timings.postMs };
  }, { warmup: options.warmup, iterations: options.iterations, tegrastats: options.tegrastats ?? true });
  const input = loaded.runtime.inputs[0]!;
  const report = buildBenchReport({
    deviceId: options.deviceId,
    commandId: options.commandId ?? null,
    model: {
      name: loaded.manifest.name,
      version: loaded.manifest.version,
      sha256: loaded.stored.info.sha256,
      file: loaded.model.file,
      precision: loaded.model.precision,
    },
    // The stand-in runner computes with ONNX Runtime: only a real TensorRT runner is reported as `tensorrt`.
    runtime: loaded.tensorrt ? 'tensorrt' : 'onnxruntime',
    executionProvider: loaded.runtime.executionProvider,
    input: { name: input.name, shape: [1, 3, h, w] },
    result,
    accuracy: options.accuracy,
  });
  // `serving` (an extra field the bench schema keeps) names the path measured: the runner, or ONNX Runtime in-process.
  return { ...report, serving: loaded.serving };
}
