/**
 * `npm run bench -w @kd-edge/edge-agent`: what the agent costs on the device.
 * - idle RSS: an agent connected to a broker, no model;
 * - RSS while serving yolov5n (320 px, seeded weights) after 200 inferences;
 * - overhead of the agent's inference path over a bare `session.run` on the same input tensor
 *   (goal ≤ 5 %): the runtime wrapper alone, and the whole detect (copy out, decode-free NMS);
 * - the swap gap: the inference interval that spans a model swap under a busy loop, against the loop's
 *   median interval, with the next model's load + warm-up and the old session's release timed apart.
 * Prints figures; asserts nothing.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import * as ort from 'onnxruntime-node';
import { encodeModel, exportOnnx, generateKeyPair, planYolo, seededRandom, writeKeyPair, yoloDescription } from '@kd-edge/core';
import { Agent } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { OrtRuntime } from '../src/runtime/ort-runtime.js';
import { Detector } from '../src/serve/detector.js';
import { ModelSlot } from '../src/serve/model-slot.js';

const IMGSZ = 320;
const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const mib = (b: number): string => (b / 2 ** 20).toFixed(0);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function yolov5n(dir: string, seed: number): Promise<string> {
  const desc = yoloDescription({ depth_multiple: 0.33, width_multiple: 0.25 }, 80);
  const rand = seededRandom(seed);
  const weights = new Map<string, Float32Array>();
  for (const spec of planYolo(desc).specs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    const fanIn = spec.shape.length === 4 ? spec.shape[1]! * spec.shape[2]! * spec.shape[3]! : 1;
    for (let i = 0; i < n; i++) {
      if (spec.name.endsWith('running_var')) v[i] = 0.5 + rand();
      else if (spec.name.endsWith('bn.weight')) v[i] = 0.8 + 0.4 * rand();
      else if (spec.name.endsWith('running_mean') || spec.name.endsWith('bn.bias')) v[i] = (rand() - 0.5) * 0.2;
      else v[i] = ((rand() * 2 - 1) * Math.sqrt(3)) / Math.sqrt(fanIn);
    }
    weights.set(spec.name, v);
  }
  const file = join(dir, `yolov5n-${seed}.onnx`);
  await writeFile(file, encodeModel(exportOnnx(desc, weights, { imgsz: IMGSZ })));
  return file;
}

const manifestFor = {
  name: 'yolov5n', version: '1.0.0',
  input: { name: 'images', shape: [1, 3, IMGSZ, IMGSZ], layout: 'NCHW' as const, dtype: 'float32' as const, normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] }, letterbox: { color: [114, 114, 114], auto: false, stride: 32 } },
  output: { name: 'output0', layout: 'yolov5-decoded' as const, shape: [1, 6300, 85] },
  names: Array.from({ length: 80 }, (_, i) => `class${i}`),
  strides: [8, 16, 32],
  anchors: [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
};

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kd-agent-bench-'));
  console.log(`kd-agent bench: yolov5n ${IMGSZ} px (seeded weights), ${RUNS} runs, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, node ${process.version}, onnxruntime-node ${ort.env.versions.node ?? ''}`);

  // Idle RSS: a connected agent with no model.
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const pair = generateKeyPair();
  await writeKeyPair(pair, { privateKeyPath: join(dir, 'k.key'), publicKeyPath: join(dir, 'k.pub') });
  const agent = await Agent.start(validateAgentConfig({
    fleet: 'bench', deviceId: 'bench-01', dataDir: join(dir, 'agent'), keys: [join(dir, 'k.pub')],
    broker: { url: `mqtt://127.0.0.1:${port}`, protocolVersion: 4 }, runtime: { trtexec: false },
  }));
  await agent.online;
  global.gc?.();
  await new Promise((r) => setTimeout(r, 500));
  const idle = process.memoryUsage().rss;

  // Serving: the agent's path vs a bare session on the same tensor.
  const fileA = await yolov5n(dir, 1);
  const fileB = await yolov5n(dir, 2);
  const session = await ort.InferenceSession.create(fileA);
  const runtime = await OrtRuntime.load(fileA, { executionProviders: ['cpu'] });
  const detector = new Detector(runtime, manifestFor, { conf: 0.25, iou: 0.45 });
  const pixels = Buffer.alloc(IMGSZ * IMGSZ * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 31) & 0xff;
  const prepared = await detector.prepare({ data: pixels, width: IMGSZ, height: IMGSZ, channels: 3 });
  const feed = { images: new ort.Tensor('float32', prepared.data, prepared.dims) };
  const time = async (fn: () => Promise<unknown>): Promise<number[]> => {
    for (let i = 0; i < 10; i++) await fn();
    const t: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      await fn();
      t.push(performance.now() - t0);
    }
    return t;
  };
  // Interleave the three paths in rounds so load drift on a shared machine hits all alike.
  const bare: number[] = [];
  const wrapped: number[] = [];
  const detect: number[] = [];
  for (let round = 0; round < 4; round++) {
    bare.push(...(await time(() => session.run(feed))));
    wrapped.push(...(await time(() => runtime.run(prepared.data, prepared.dims))));
    detect.push(...(await time(() => detector.detectTensor(prepared))));
  }
  const serving = process.memoryUsage().rss;
  const pb = median(bare);
  const pw = median(wrapped);
  const pd = median(detect);

  // Swap gap: a busy inference loop while the slot swaps between two models 10 times. Each swap has three parts that
  // could stall the loop, kept 150 ms apart so each lands in its own interval: the next model's load and warm-up
  // (beside the serving one, as the agent does), the swap itself, and the old session's release after its last run.
  const slot = new ModelSlot<Detector>(detector);
  const completions: number[] = [];
  let failures = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        await slot.use((d) => d.detectTensor(prepared));
        completions.push(performance.now());
      } catch {
        failures++;
      }
    }
  })();
  const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const loadSpans: Array<[number, number]> = [];
  const swapTimes: number[] = [];
  const releaseMs: number[] = [];
  for (let i = 0; i < 10; i++) {
    await pause(300);
    const file = i % 2 === 0 ? fileB : fileA;
    const loadStart = performance.now();
    const next = new Detector(await OrtRuntime.load(file, { executionProviders: ['cpu'] }), manifestFor);
    await next.detectTensor(prepared); // warm up beside the serving one, as the agent does
    loadSpans.push([loadStart, performance.now()]);
    await pause(150);
    swapTimes.push(performance.now());
    const released = slot.swap(next);
    const releaseStart = performance.now();
    await released;
    releaseMs.push(performance.now() - releaseStart);
  }
  await pause(300);
  running = false;
  await loop;
  const gaps = completions.slice(1).map((t, i) => t - completions[i]!);
  // The interval (between two completions) that contains time t.
  const intervalAt = (t: number): number => {
    const after = completions.findIndex((c) => c >= t);
    return after > 0 ? completions[after]! - completions[after - 1]! : NaN;
  };
  // The longest interval that overlaps [a, b].
  const worstDuring = ([a, b]: [number, number]): number => Math.max(...completions.slice(1).map((c, k) => (c >= a && completions[k]! <= b ? c - completions[k]! : 0)));
  const gapAfterSwap = swapTimes.map(intervalAt).filter(Number.isFinite);
  const gapDuringLoad = loadSpans.map(worstDuring).filter((g) => g > 0);
  const loadMs = loadSpans.map(([a, b]) => b - a);

  console.log('');
  console.log(`idle RSS (agent connected, no model)        ${mib(idle)} MiB`);
  console.log(`RSS serving yolov5n                         ${mib(serving)} MiB`);
  console.log(`bare session.run p50                        ${pb.toFixed(2)} ms`);
  console.log(`agent runtime.run p50                       ${pw.toFixed(2)} ms  (${(((pw - pb) / pb) * 100).toFixed(1)} % over bare)`);
  console.log(`agent detect (run + NMS + boxes) p50        ${pd.toFixed(2)} ms  (${(((pd - pb) / pb) * 100).toFixed(1)} % over bare)`);
  console.log(`inference interval p50 under swaps          ${median(gaps).toFixed(2)} ms`);
  console.log(`interval spanning a swap, max / median      ${Math.max(...gapAfterSwap).toFixed(2)} / ${median(gapAfterSwap).toFixed(2)} ms  (${swapTimes.length} swaps, ${failures} failed inferences, ${completions.length} done)`);
  console.log(`next model load + warm-up, median           ${median(loadMs).toFixed(1)} ms`);
  console.log(`longest interval during load + warm-up      ${Math.max(...gapDuringLoad).toFixed(2)} / ${median(gapDuringLoad).toFixed(2)} ms  (max / median)`);
  console.log(`swap to old session released, median / max ${median(releaseMs).toFixed(2)} / ${Math.max(...releaseMs).toFixed(2)} ms`);

  await slot.close();
  await session.release();
  await agent.stop();
  server.close();
  await new Promise<void>((r) => broker.close(() => r()));
  await rm(dir, { recursive: true, force: true });
}

await main();
