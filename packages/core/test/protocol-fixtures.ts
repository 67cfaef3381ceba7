import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { makeAdapt, type AdaptMessage } from '../src/protocol/adapt.js';
import { keyIdOf } from '../src/package/keys.js';
import type { Manifest, UnsignedManifest } from '../src/package/manifest.js';
import { signManifest } from '../src/package/sign.js';
import { makeBench, type BenchMessage } from '../src/protocol/bench.js';
import { makeChunkRequest, type ChunkRequestMessage } from '../src/protocol/chunk-request.js';
import { makeCommand, type CommandMessage } from '../src/protocol/command.js';
import { signCommand } from '../src/protocol/command-signature.js';
import { makeDetections, type DetectionsMessage } from '../src/protocol/detections.js';
import { makeEvent, type EventMessage } from '../src/protocol/event.js';
import { makeOfflineStatus, makeStatus, type StatusMessage } from '../src/protocol/status.js';

/** A deterministic Ed25519 key from a seed phrase (RFC 8410 PKCS#8 wrapping of the 32-byte seed). */
export function seededKey(phrase: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const seed = createHash('sha256').update(phrase).digest();
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** The key the documentation examples are signed with (never a real fleet key). */
export const DOCS_KEY = seededKey('kd-edge protocol v1 documentation example key');

/** The device key the example status reports (never a real device's). */
export const DOCS_DEVICE_KEY = seededKey('kd-edge protocol v1 documentation example device key');

const hex = (s: string): string => createHash('sha256').update(s).digest('hex');

/** SHA-256 of the example package .tar. */
export const EXAMPLE_TAR_SHA256 = hex('yolov5n-pets-1.2.0.tar');
const TS = '2026-05-01T12:00:00.000Z';

/** The unsigned manifest of the example package. */
export function exampleUnsignedManifest(version = '1.2.0'): UnsignedManifest {
  return {
    manifestVersion: 1,
    name: 'yolov5n-pets',
    version,
    createdAt: '2026-05-01T11:00:00Z',
    task: 'detect',
    input: {
      name: 'images',
      shape: [1, 3, 320, 320],
      layout: 'NCHW',
      dtype: 'float32',
      normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
      letterbox: { color: [114, 114, 114], auto: false, stride: 32 },
    },
    output: { name: 'output0', layout: 'yolov5-decoded', shape: [1, 6300, 7] },
    names: ['cat', 'dog'],
    strides: [8, 16, 32],
    anchors: [
      [10, 13, 16, 30, 33, 23],
      [30, 61, 62, 45, 59, 119],
      [116, 90, 156, 198, 373, 326],
    ],
    precision: 'int8',
    models: [
      { file: 'model.int8.onnx', precision: 'int8', format: 'onnx', default: true },
      { file: 'model.onnx', precision: 'fp32', format: 'onnx' },
    ],
    files: [
      { path: 'calib.cache', sha256: hex('calib.cache'), size: 48 },
      { path: 'model.int8.onnx', sha256: hex('model.int8.onnx'), size: 2_150_000 },
      { path: 'model.onnx', sha256: hex('model.onnx'), size: 7_600_000 },
      { path: 'trt-plan.json', sha256: hex('trt-plan.json'), size: 310 },
    ],
    metrics: { 'metrics/mAP50(B)': 0.512, 'metrics/mAP50-95(B)': 0.318 },
    tensorrt: { plan: 'trt-plan.json', calibCache: 'calib.cache' },
  };
}

/** The example manifest, signed with {@link DOCS_KEY}. */
export function exampleManifest(version = '1.2.0'): Manifest {
  return signManifest(exampleUnsignedManifest(version), DOCS_KEY.privateKey);
}

const activeModel = { name: 'yolov5n-pets', version: '1.2.0', sha256: EXAMPLE_TAR_SHA256, precision: 'int8', runtime: 'tensorrt', executionProvider: 'TensorrtExecutionProvider' } as const;

/** One example of every message, as documented in docs/protocol.md (same order, same content). */
export function protocolExamples(): {
  status: StatusMessage;
  lastWill: StatusMessage;
  ping: CommandMessage;
  deploy: CommandMessage;
  rollback: CommandMessage;
  benchmark: CommandMessage;
  adapt: CommandMessage;
  adaptCancel: CommandMessage;
  adaptUpload: CommandMessage;
  event: EventMessage;
  eventFailed: EventMessage;
  bench: BenchMessage;
  adaptTraining: AdaptMessage;
  adaptDone: AdaptMessage;
  detections: DetectionsMessage;
  chunkRequest: ChunkRequestMessage;
  manifest: Manifest;
} {
  return {
    status: makeStatus({
      deviceId: 'jetson-01',
      online: true,
      ts: TS,
      agentVersion: '0.1.0',
      hardware: {
        arch: 'arm64',
        platform: 'linux',
        cpus: 6,
        memTotalMb: 7620,
        cpuModel: 'ARMv8 Processor rev 1 (v8l)',
        jetson: { model: 'NVIDIA Jetson Orin Nano Developer Kit', l4t: '36.3.0', jetpack: '6.0' },
        tensorrt: '8.6.2',
        gpu: 'Orin (nvgpu)',
        ort: { version: '1.18.0', executionProviders: ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider'] },
      },
      activeModel,
      previousModel: { name: 'yolov5n-pets', version: '1.1.0', sha256: hex('yolov5n-pets-1.1.0.tar'), precision: 'fp16', runtime: 'tensorrt' },
      freeDiskMb: 41200,
      serving: { fps: 58.2, frames: 123456 },
      deviceKey: { keyId: keyIdOf(DOCS_DEVICE_KEY.publicKey), publicKeyPem: DOCS_DEVICE_KEY.publicKey.export({ type: 'spki', format: 'pem' }).toString() },
    }),
    lastWill: makeOfflineStatus('jetson-01', TS),
    ping: makeCommand({ command: 'ping', id: 'c-0001', deviceId: 'jetson-01', ts: TS }),
    deploy: signCommand(
      makeCommand({
        command: 'deploy',
        id: 'r7-jetson-01',
        rolloutId: 'r7',
        deviceId: 'jetson-01',
        ts: TS,
        package: {
          name: 'yolov5n-pets',
          version: '1.2.0',
          sha256: EXAMPLE_TAR_SHA256,
          size: 9_781_760,
          http: { url: 'https://fleet.example/packages/yolov5n-pets/1.2.0.tar', headers: { authorization: 'Bearer <token>' } },
          mqtt: { chunkSize: 262144 },
        },
        manifest: exampleManifest(),
        gates: { maxP95Ms: 25, minFps: 30, minMap50: 0.45 },
        benchmark: { warmup: 20, iterations: 200 },
      }),
      DOCS_KEY.privateKey,
    ),
    rollback: signCommand(makeCommand({ command: 'rollback', id: 'c-0002', deviceId: 'jetson-01', ts: TS, fromVersion: '1.2.0' }), DOCS_KEY.privateKey),
    benchmark: makeCommand({ command: 'benchmark', id: 'c-0003', deviceId: 'jetson-01', ts: TS, warmup: 20, iterations: 500 }),
    adapt: signCommand(
      makeCommand({
        command: 'adapt',
        id: 'c-0004',
        deviceId: 'jetson-01',
        ts: TS,
        jobId: 'adapt-0001',
        base: { name: 'yolov5n-pets', version: '1.2.0' },
        teacher: { name: 'yolov5m-pets-teacher', version: '1.0.0' },
        recipe: { epochs: 10, imgsz: 320, timeBudgetSec: 3600, memoryBudgetMb: 2048, minGain: 0.01, maxLoss: 0.02 },
        activate: true,
      }),
      DOCS_KEY.privateKey,
    ),
    adaptCancel: makeCommand({ command: 'adapt-cancel', id: 'c-0005', deviceId: 'jetson-01', ts: TS, jobId: 'adapt-0001' }),
    adaptUpload: signCommand(
      makeCommand({
        command: 'adapt-upload',
        id: 'c-0006',
        deviceId: 'jetson-01',
        ts: TS,
        jobId: 'adapt-0001',
        url: 'https://fleet.example/api/uploads/9b1c6a0f2e8d4b7a5c3e1f0a9d8b7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c',
      }),
      DOCS_KEY.privateKey,
    ),
    event: makeEvent({ deviceId: 'jetson-01', commandId: 'r7-jetson-01', command: 'deploy', ts: TS, state: 'downloading', progress: { bytes: 4194304, total: 9781760 } }),
    eventFailed: makeEvent({
      deviceId: 'jetson-01',
      commandId: 'r7-jetson-01',
      command: 'deploy',
      ts: TS,
      state: 'failed',
      code: 'PACKAGE_HASH_MISMATCH',
      message: 'model.int8.onnx hashes to 3f2a…, not the manifest sha256',
    }),
    bench: makeBench({
      deviceId: 'jetson-01',
      commandId: 'c-0003',
      ts: TS,
      model: { name: 'yolov5n-pets', version: '1.2.0', sha256: EXAMPLE_TAR_SHA256, file: 'model.int8.onnx', precision: 'int8' },
      runtime: 'tensorrt',
      executionProvider: 'TensorrtExecutionProvider',
      input: { name: 'images', shape: [1, 3, 320, 320] },
      batch: 1,
      warmup: 20,
      iterations: 500,
      latencyMs: { min: 11.2, mean: 12.9, p50: 12.6, p90: 14.1, p95: 14.8, p99: 17.3, max: 21.4 },
      throughputFps: 77.5,
      splitMs: { pre: 2.1, infer: 9.4, post: 1.4 },
      rssMb: 612,
      cpuLoadPct: 38.5,
      tegrastats: { samples: 65, totalPowerMw: 7450, powerMw: { VDD_IN: 7450, VDD_CPU_GPU_CV: 2980, VDD_SOC: 1510 }, tempC: { cpu: 52.3, gpu: 51.8 }, gpuLoadPct: 71, ramUsedMb: 3120 },
      accuracy: { map50: 0.498, map: 0.305, images: 50 },
    }),
    adaptTraining: makeAdapt({
      deviceId: 'jetson-01',
      jobId: 'adapt-0001',
      commandId: 'c-0004',
      ts: TS,
      state: 'training',
      base: { name: 'yolov5n-pets', version: '1.2.0' },
      teacher: { name: 'yolov5m-pets-teacher', version: '1.0.0' },
      frames: { used: 384, holdout: 96 },
      epoch: 4,
      epochs: 10,
      losses: { box: 0.0412, obj: 0.0267, cls: 0.0051, kd: 0.0188 },
      holdout: { images: 96, after: { map50: 0.611, map: 0.372 } },
    }),
    adaptDone: makeAdapt({
      deviceId: 'jetson-01',
      jobId: 'adapt-0001',
      commandId: 'c-0004',
      ts: TS,
      state: 'succeeded',
      base: { name: 'yolov5n-pets', version: '1.2.0' },
      teacher: { name: 'yolov5m-pets-teacher', version: '1.0.0' },
      version: '1.2.0+adapt.jetson-01.1',
      frames: { used: 384, holdout: 96 },
      epoch: 10,
      epochs: 10,
      losses: { box: 0.0388, obj: 0.0249, cls: 0.0046, kd: 0.0171 },
      holdout: { images: 96, before: { map50: 0.552, map: 0.331 }, after: { map50: 0.634, map: 0.389 } },
      val: { images: 50, before: { map50: 0.498, map: 0.305 }, after: { map50: 0.493, map: 0.299 } },
      accepted: true,
      reasons: ['hold-out mAP50-95 0.331 → 0.389 (+0.058) ≥ min-gain 0.010', 'val mAP50-95 0.305 → 0.299 (-0.006) within max-loss 0.020'],
      activated: true,
    }),
    detections: makeDetections({
      deviceId: 'jetson-01',
      ts: TS,
      frame: { source: 'csi://0', width: 1280, height: 720, seq: 9021 },
      model: { name: 'yolov5n-pets', version: '1.2.0' },
      latencyMs: 13.1,
      detections: [
        { cls: 0, name: 'cat', score: 0.91, box: [412.5, 188, 640.25, 455] },
        { cls: 1, name: 'dog', score: 0.62, box: [20, 300.5, 260, 700] },
      ],
      skipped: 2,
    }),
    chunkRequest: makeChunkRequest({ deviceId: 'jetson-01', name: 'yolov5n-pets', version: '1.2.0', sha256: EXAMPLE_TAR_SHA256, chunkSize: 262144, indexes: [0, 1, 2, 3] }),
    manifest: exampleManifest(),
  };
}

/** JSON with arrays of scalars on one line, as docs/protocol.md shows it. */
export function docsJson(value: unknown, indent = ''): string {
  if (Array.isArray(value)) {
    if (value.every((x) => x === null || typeof x !== 'object')) return `[${value.map((x) => JSON.stringify(x)).join(', ')}]`;
    return `[\n${value.map((x) => `${indent}  ${docsJson(x, `${indent}  `)}`).join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}';
    return `{\n${entries.map(([k, x]) => `${indent}  ${JSON.stringify(k)}: ${docsJson(x, `${indent}  `)}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}

/**
 * The `<!-- example: name -->` blocks of docs/protocol.md, to paste after changing an example:
 * `npx tsx -e "import('./packages/core/test/protocol-fixtures.ts').then((m) => console.log(m.docsExampleBlocks().join('\\n\\n')))"`.
 */
export function docsExampleBlocks(): string[] {
  return Object.entries(protocolExamples()).map(([name, message]) => `<!-- example: ${name} -->\n\`\`\`json\n${docsJson(message)}\n\`\`\``);
}
