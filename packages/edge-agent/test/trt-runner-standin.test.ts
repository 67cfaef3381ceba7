// The runner protocol against the ONNX Runtime stand-in (there is no TensorRT here): handshake, load, results equal
// to onnxruntime-node run directly, bad frames and bad regions answered with errors, and an in-place engine swap.
import * as ort from 'onnxruntime-node';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Detector } from '../src/serve/detector.js';
import { RunnerClient } from '../src/runtime/trt-runner/runner-client.js';
import { RunnerSupervisor } from '../src/runtime/trt-runner/runner-supervisor.js';
import { openRunnerDetector } from '../src/runtime/trt-runner/runner-runtime.js';
import { layoutRegions, ShmRegion } from '../src/runtime/trt-runner/shm-region.js';
import { FrameDecoder, encodeFrame, type LoadedReply } from '../src/runtime/trt-runner/protocol.js';
import { TrtRunnerError } from '../src/runtime/trt-runner/trt-runner-error.js';
import { picturePng, tempDir, writeConstantDetector, writeTinyYolo } from './fixtures/serve/models.js';
import { shmTempDir, standinCommand } from './trt-runner-helpers.js';

let dir: string;
let shmDir: string;
let cleanup: Array<() => Promise<void>> = [];
let yolo: Awaited<ReturnType<typeof writeTinyYolo>>;
let client: RunnerClient;

beforeAll(async () => {
  const t = await tempDir('kd-trt-standin-');
  const s = await shmTempDir();
  dir = t.dir;
  shmDir = s.dir;
  cleanup = [t.remove, s.remove];
  yolo = await writeTinyYolo(dir, 32);
  client = await RunnerClient.start(standinCommand(shmDir));
}, 120_000);
afterAll(async () => {
  await client?.close();
  for (const f of cleanup) await f();
});

function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = (s >>> 8) / (1 << 24);
  }
  return out;
}

async function region(loaded: LoadedReply): Promise<{ shm: ShmRegion; layout: ReturnType<typeof layoutRegions> }> {
  const layout = layoutRegions(loaded.inputs, loaded.outputs);
  const shm = await ShmRegion.create({ dir: shmDir, size: layout.size });
  cleanup.unshift(() => shm.close());
  return { shm, layout };
}

describe('frames', () => {
  it('splits a byte stream at any boundary and skips an oversize frame without losing step', () => {
    const a = encodeFrame({ id: 1, type: 'hello', versions: [1] });
    const big = Buffer.alloc(4 + 70_000, 7);
    big.writeUInt32LE(70_000, 0);
    const b = encodeFrame({ id: 2, type: 'shutdown' });
    const stream = Buffer.concat([a, big, b]);
    const d = new FrameDecoder();
    const got = [];
    for (let i = 0; i < stream.length; i += 997) got.push(...d.push(stream.subarray(i, i + 997)));
    expect(got.map((f) => (f.kind === 'frame' ? JSON.parse(f.body.toString()).id : `oversize ${f.length}`))).toEqual([1, 'oversize 70000', 2]);
    expect(d.pending).toBe(0);
  });
});

describe('stand-in runner', () => {
  it('answers hello as the stand-in, never as TensorRT, and refuses a protocol it does not speak', async () => {
    expect(client.hello).toMatchObject({ v: 1, runner: 'kd-trt-standin', impl: 'onnxruntime-standin', api: 'onnxruntime' });
    expect(client.hello.version).toBe(ort.env.versions.common);
    const reply = await client.requestRaw({ type: 'hello', versions: [2, 3] });
    expect(reply).toMatchObject({ type: 'error', code: 'UNSUPPORTED_VERSION' });
  });

  it('loads a model, reports its tensors, and its results equal onnxruntime-node run directly', async () => {
    const loaded = await client.load('raw', yolo.raw);
    expect(loaded.inputs).toEqual([{ name: 'images', dtype: 'float32', shape: [1, 3, 32, 32] }]);
    expect(loaded.outputs.map((o) => [o.name, o.shape])).toEqual([
      ['output0', [1, 3, 4, 4, 7]], ['output1', [1, 3, 2, 2, 7]], ['output2', [1, 3, 1, 1, 7]],
    ]);
    const { shm, layout } = await region(loaded);
    const direct = await ort.InferenceSession.create(yolo.raw, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    try {
      for (const seed of [1, 2]) {
        const x = seeded(3 * 32 * 32, seed);
        await shm.write(layout.inputs[0]!.offset, x);
        const result = await client.infer({ engine: 'raw', shm: shm.path, inputs: layout.inputs, outputs: layout.outputs });
        const want = await direct.run({ images: new ort.Tensor('float32', x, [1, 3, 32, 32]) });
        for (const r of layout.outputs) {
          const got = new Float32Array((await shm.read(r.offset, r.bytes)).buffer);
          expect(result.outputs.find((o) => o.name === r.name)!.shape).toEqual([...want[r.name]!.dims]);
          expect([...got]).toEqual([...(want[r.name]!.data as Float32Array)]);
        }
      }
    } finally {
      await direct.release();
      await client.unload('raw');
    }
  });

  it('detects through the runner exactly what the ONNX Runtime detector detects', async () => {
    const sup = new RunnerSupervisor({ command: standinCommand(shmDir) });
    await sup.start();
    const viaRunner = await openRunnerDetector(sup, yolo.decoded, yolo.decodedModel, { shmDir, conf: 0.1 });
    const direct = await Detector.open(yolo.decoded, yolo.decodedModel, { conf: 0.1, sessionOptions: { intraOpNumThreads: 1, interOpNumThreads: 1 } });
    try {
      const png = await picturePng(64, 48);
      const a = await viaRunner.detect(png);
      const b = await direct.detect(png);
      expect(a.detections.length).toBeGreaterThan(0);
      expect(a.detections).toEqual(b.detections);
    } finally {
      await viaRunner.dispose();
      await direct.dispose();
      await sup.close();
    }
  });

  it('answers bad frames and bad requests with error frames and stays up', async () => {
    const pid = client.pid;
    const loaded = await client.load('m', yolo.decoded);
    const { shm, layout } = await region(loaded);
    const protocolErrors: string[] = [];
    client.on('protocolError', (e) => protocolErrors.push(e.code));

    // Not JSON, and a frame over the limit (its body is skipped, the stream stays in step).
    client.writeRaw(Buffer.from([5, 0, 0, 0, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b]));
    const big = Buffer.alloc(4 + 70_000, 0x20);
    big.writeUInt32LE(70_000, 0);
    client.writeRaw(big);
    const good = { engine: 'm', shm: shm.path, inputs: layout.inputs, outputs: layout.outputs };
    const expectCode = async (message: Record<string, unknown>, code: string, match?: RegExp): Promise<void> => {
      const reply = await client.requestRaw(message);
      expect(reply, JSON.stringify(message)).toMatchObject({ type: 'error', code });
      if (match) expect((reply as { message: string }).message).toMatch(match);
    };
    await expectCode({ type: 'dance' }, 'UNKNOWN_TYPE');
    await expectCode({ type: 'load', engine: 'x' }, 'BAD_REQUEST', /missing 'path'/);
    await expectCode({ type: 'load', engine: '../x', path: yolo.decoded }, 'BAD_REQUEST', /'engine' must match/);
    await expectCode({ type: 'load', engine: 'x', path: join(dir, 'absent.onnx') }, 'LOAD_FAILED', /absent\.onnx/);
    await expectCode({ type: 'infer', ...good, inputs: 'images' }, 'BAD_REQUEST');
    await expectCode({ type: 'infer', ...good, shm: '/etc/passwd' }, 'SHM_INVALID');
    await expectCode({ type: 'infer', ...good, shm: `${shmDir}/../x` }, 'SHM_INVALID');
    await expectCode({ type: 'infer', ...good, shm: `${shmDir}/absent` }, 'SHM_INVALID');
    const out0 = layout.outputs[0]!;
    await expectCode({ type: 'infer', ...good, outputs: [{ ...out0, offset: shm.size }] }, 'OUT_OF_BOUNDS', /outside/);
    await expectCode({ type: 'infer', ...good, outputs: [{ ...out0, offset: shm.size - 4 }] }, 'OUT_OF_BOUNDS');
    await expectCode({ type: 'infer', ...good, outputs: [{ ...out0, bytes: 2 ** 53 - 1 }] }, 'OUT_OF_BOUNDS');
    await expectCode({ type: 'infer', ...good, outputs: [{ ...out0, offset: -4 }] }, 'BAD_REQUEST');
    await expectCode({ type: 'infer', ...good, outputs: [{ ...out0, offset: 1.5 }] }, 'BAD_REQUEST');
    await expectCode({ type: 'infer', ...good, outputs: [{ ...out0, offset: 8 }] }, 'OUT_OF_BOUNDS', /overlap/);
    await expectCode({ type: 'infer', ...good, engine: 'nope' }, 'NO_ENGINE');
    await expectCode({ type: 'infer', ...good, inputs: [{ ...layout.inputs[0]!, shape: [1, 3, 16, 64] }] }, 'SHAPE_MISMATCH');
    await expectCode({ type: 'infer', ...good, outputs: [{ ...out0, bytes: out0.bytes - 4 }] }, 'SHAPE_MISMATCH');
    await expectCode({ type: 'unload', engine: 'nope' }, 'NO_ENGINE');
    expect(protocolErrors).toEqual(['BAD_FRAME', 'BAD_FRAME']);

    // Still the same process, and still serving.
    expect(client.pid).toBe(pid);
    await shm.write(layout.inputs[0]!.offset, seeded(3 * 32 * 32, 3));
    const ok = await client.infer(good);
    expect(ok.outputs[0]!.shape).toEqual([1, 63, 7]);
    await client.unload('m');
  });

  it('refuses more engines than --max-engines', async () => {
    const one = await RunnerClient.start(standinCommand(shmDir, '--max-engines', '1'));
    try {
      await one.load('a', yolo.decoded);
      await expect(one.load('b', yolo.decoded)).rejects.toMatchObject({ code: 'TRT_RUNNER_TOO_MANY_ENGINES' });
      // Replacing under the same key is a swap, not a new engine.
      await expect(one.load('a', yolo.raw)).resolves.toMatchObject({ type: 'loaded', engine: 'a' });
    } finally {
      await one.close();
    }
  });

  it('swaps the engine under a key in place while inferences keep coming: none fails, none is lost', async () => {
    const rowsA = [[16, 16, 8, 8, 0.9, 0.9, 0.1]];
    const rowsB = [[10, 10, 4, 4, 0.8, 0.1, 0.9]];
    const a = await writeConstantDetector(dir, 'a.onnx', 32, rowsA, 2);
    const b = await writeConstantDetector(dir, 'b.onnx', 32, rowsB, 2);
    const loaded = await client.load('live', a);
    const { shm, layout } = await region(loaded);
    const out = layout.outputs[0]!;
    const seen: string[] = [];
    let failures = 0;
    let swapped = false;
    let afterSwap = 0;
    const loop = (async () => {
      // Each inference waits for the previous one, like the serving loop; the load request interleaves with them.
      while (!swapped || afterSwap < 5) {
        try {
          await client.infer({ engine: 'live', shm: shm.path, inputs: layout.inputs, outputs: layout.outputs });
          const v = new Float32Array((await shm.read(out.offset, out.bytes)).buffer);
          seen.push(v[0] === 16 ? 'A' : v[0] === 10 ? 'B' : `? ${v[0]}`);
          if (swapped) afterSwap++;
        } catch {
          failures++;
        }
      }
    })();
    while (seen.length < 5) await new Promise((r) => setTimeout(r, 5));
    await client.load('live', b);
    swapped = true;
    await loop;
    expect(failures).toBe(0);
    const firstB = seen.indexOf('B');
    expect(firstB).toBeGreaterThanOrEqual(5);
    expect(seen.slice(0, firstB).every((s) => s === 'A')).toBe(true);
    expect(seen.slice(firstB).every((s) => s === 'B')).toBe(true);
    await client.unload('live');
  });

  it('fails to start with TRT_RUNNER_SPAWN_FAILED for a missing executable and TRT_RUNNER_EXITED for one that dies', async () => {
    await expect(RunnerClient.start([join(dir, 'no-such-runner')])).rejects.toMatchObject({ code: 'TRT_RUNNER_SPAWN_FAILED' });
    const dying = join(dir, 'dying.mjs');
    await writeFile(dying, "process.stderr.write('cannot open libnvinfer.so.8\\n'); process.exit(3);\n");
    const err = await RunnerClient.start([process.execPath, dying]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrtRunnerError);
    expect((err as TrtRunnerError).code).toBe('TRT_RUNNER_EXITED');
    expect((err as TrtRunnerError).message).toMatch(/exited with code 3[\s\S]*libnvinfer/);
  });
});
