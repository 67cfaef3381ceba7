// The native runner compiles and links for both TensorRT API generations against kd-edge's compat headers and link
// stub (there is no TensorRT or CUDA here), and the stub-linked binaries speak the protocol: hello, every error frame,
// and LOAD_FAILED for load since no TensorRT is inside. What this cannot show: that the real NVIDIA headers agree
// (only a build on a Jetson shows that) and anything about running an engine.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunnerClient } from '../src/runtime/trt-runner/runner-client.js';
import { ShmRegion } from '../src/runtime/trt-runner/shm-region.js';
import { shmTempDir, until } from './trt-runner-helpers.js';

const SCRIPT = fileURLToPath(new URL('../native/trt-runner/check-compile.sh', import.meta.url));
const HAVE_GXX = spawnSync('g++', ['--version']).status === 0;
if (!HAVE_GXX) console.warn('trt-runner-compile: skipped: g++ is not installed (.ci/run installs it)');

let out: string;
let shmDir: string;
let removeShm: () => Promise<void>;
let check: ReturnType<typeof spawnSync> | undefined;

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'kd-trt-compile-'));
  ({ dir: shmDir, remove: removeShm } = await shmTempDir());
  if (HAVE_GXX) check = spawnSync('bash', [SCRIPT, out], { encoding: 'utf8', timeout: 280_000 });
}, 300_000);
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
  await removeShm?.();
});

describe.skipIf(!HAVE_GXX)('native trt-runner compile check (g++, compat headers, link stub)', () => {
  it('compiles and links for TensorRT 8.2 and 10.3 with warnings as errors', () => {
    expect(check?.stderr ?? '').toBe('');
    expect(check?.status).toBe(0);
    expect(check?.stdout).toMatch(/ok: TensorRT 8\.2 compat build/);
    expect(check?.stdout).toMatch(/ok: TensorRT 10\.3 compat build/);
  });

  describe.each([
    ['8.2', 'bindings'],
    ['10.3', 'tensors'],
  ])('the TensorRT %s build', (gen, api) => {
    it(`answers hello with the ${api} API and every bad request with an error frame, and stays up`, async () => {
      const bin = join(out, `kd-trt-runner-trt${gen}`);
      expect(existsSync(bin)).toBe(true);
      const client = await RunnerClient.start([bin, '--shm-dir', shmDir], { handshakeTimeoutMs: 10_000 });
      const shm = await ShmRegion.create({ dir: shmDir, size: 1024 });
      try {
        expect(client.hello).toMatchObject({ v: 1, runner: 'kd-trt-runner', impl: 'tensorrt', api, version: `${gen}.${gen === '8.2' ? 1 : 0}` });
        expect((client.hello as unknown as { compatHeaders: boolean }).compatHeaders).toBe(true);
        const protocolErrors: string[] = [];
        client.on('protocolError', (e) => protocolErrors.push(`${e.code}: ${e.message}`));
        client.writeRaw(Buffer.from([3, 0, 0, 0, 0x5b, 0x31, 0x2c])); // "[1," — truncated JSON
        const big = Buffer.alloc(4 + 100_000, 0x41);
        big.writeUInt32LE(100_000, 0);
        client.writeRaw(big);

        const engineFile = join(out, 'not-an-engine.plan');
        await writeFile(engineFile, 'not an engine');
        const x = { name: 'x', offset: 0, bytes: 16, shape: [1, 4] };
        const cases: Array<[Record<string, unknown>, string, RegExp?]> = [
          [{ type: 'hello', versions: [2] }, 'UNSUPPORTED_VERSION'],
          [{ type: 'fly' }, 'UNKNOWN_TYPE'],
          [{ type: 'load', engine: 'a' }, 'BAD_REQUEST', /missing 'path'/],
          [{ type: 'load', engine: 'a/b', path: engineFile }, 'BAD_REQUEST'],
          [{ type: 'load', engine: 'a', path: join(out, 'absent.plan') }, 'LOAD_FAILED', /cannot open engine file/],
          [{ type: 'load', engine: 'a', path: engineFile }, 'LOAD_FAILED', /createInferRuntime failed/],
          [{ type: 'infer', engine: 'a', shm: '/etc/passwd', inputs: [x], outputs: [] }, 'SHM_INVALID'],
          [{ type: 'infer', engine: 'a', shm: `${shmDir}/../etc`, inputs: [x], outputs: [] }, 'SHM_INVALID'],
          [{ type: 'infer', engine: 'a', shm: `${shmDir}/absent`, inputs: [x], outputs: [] }, 'SHM_INVALID', /No such file/],
          [{ type: 'infer', engine: 'a', shm: shm.path, inputs: [x], outputs: [{ name: 'y', offset: 1020, bytes: 8 }] }, 'OUT_OF_BOUNDS', /outside the 1024-byte/],
          [{ type: 'infer', engine: 'a', shm: shm.path, inputs: [{ ...x, offset: 2 ** 53 - 1, bytes: 2 ** 53 - 1 }], outputs: [] }, 'OUT_OF_BOUNDS'],
          [{ type: 'infer', engine: 'a', shm: shm.path, inputs: [x], outputs: [{ name: 'y', offset: 8, bytes: 8 }] }, 'OUT_OF_BOUNDS', /overlap/],
          [{ type: 'infer', engine: 'a', shm: shm.path, inputs: [{ ...x, offset: -8 }], outputs: [] }, 'BAD_REQUEST'],
          [{ type: 'infer', engine: 'a', shm: shm.path, inputs: [{ ...x, shape: [] }], outputs: [] }, 'BAD_REQUEST'],
          [{ type: 'infer', engine: 'a', shm: shm.path, inputs: [x], outputs: [{ name: 'y', offset: 16, bytes: 8 }] }, 'NO_ENGINE'],
          [{ type: 'unload', engine: 'a' }, 'NO_ENGINE'],
        ];
        for (const [message, code, match] of cases) {
          const reply = await client.requestRaw(message);
          expect(reply, JSON.stringify(message)).toMatchObject({ type: 'error', code });
          if (match) expect((reply as { message: string }).message).toMatch(match);
        }
        expect(protocolErrors).toEqual([expect.stringMatching(/^BAD_FRAME: frame body is not JSON/), 'BAD_FRAME: frame of 100000 bytes exceeds 65536; skipped']);

        // Garbage: seeded random frame bodies and random infer requests. Each is answered with an error; none crashes it.
        let seed = 11;
        const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
        for (let i = 0; i < 100; i++) {
          const body = Buffer.from(Array.from({ length: Math.floor(rnd() * 120) }, () => Math.floor(rnd() * 256)));
          const head = Buffer.alloc(4);
          head.writeUInt32LE(body.length, 0);
          client.writeRaw(Buffer.concat([head, body]));
        }
        for (let i = 0; i < 100; i++) {
          const n = (k: number): number => (rnd() < 0.05 ? 2 ** 53 - 1 : Math.floor(rnd() * k));
          const reply = await client.requestRaw({
            type: 'infer', engine: 'a', shm: rnd() < 0.9 ? shm.path : `${shmDir}/${'x'.repeat(n(200))}`,
            inputs: Array.from({ length: Math.floor(rnd() * 4) }, () => ({ name: 'x', offset: n(2048), bytes: n(2048), shape: [1, n(4)] })),
            outputs: Array.from({ length: Math.floor(rnd() * 4) }, () => ({ name: 'y', offset: n(2048), bytes: n(2048) })),
          });
          expect(reply.type).toBe('error');
        }
        await until('the garbage frames answered', () => protocolErrors.length === 102, 30_000);
        expect(client.exitedAlready).toBe(false);
        const exit = await client.close();
        expect(exit).toMatchObject({ code: 0, signal: null, expected: true });
      } finally {
        client.kill();
        await shm.close();
      }
    });
  });
});
