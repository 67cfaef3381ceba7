// Issue 17: `kd-agent runtime build-tensorrt` builds the runner shipped with the agent against the device's TensorRT and
// CUDA, self-checks it and prints its configuration. There is no TensorRT here, so each test builds a small fake
// "TensorRT install" the way a device lays one out: folders with NvInferVersion.h (NVIDIA's layout; for 10.x the
// indirect TRT_*_ENTERPRISE form of newer releases), kd-edge's compat NvInferRuntime.h and cuda_runtime_api.h, and a
// real libnvinfer.so and libcudart.so compiled from the compat link stub. The command then runs its device path:
// search, version, g++, link, self-check of the binary, rename, config lines. What this cannot show: that NVIDIA's own
// headers and libraries build and run it (only a device shows that; docs/trt-runner.md).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { buildTensorrtRunner, type BuildTensorrtRunnerOptions } from '../src/runtime/build-tensorrt.js';
import { locateRunnerSource } from '../src/runtime/runner-source.js';
import { parseTensorrtVersionHeader, readTensorrtVersion, tensorrtApi } from '../src/runtime/tensorrt-headers.js';
import { TrtBuildError } from '../src/runtime/trt-build-error.js';
import { RunnerClient } from '../src/runtime/trt-runner/runner-client.js';
import { shmTempDir } from './trt-runner-helpers.js';

const PKG = fileURLToPath(new URL('..', import.meta.url));
const REPO = join(PKG, '..', '..');
const COMPAT = join(PKG, 'native', 'trt-runner', 'compat');
const BIN = join(PKG, 'src', 'bin', 'kd-agent.ts');
const HAVE_GXX = spawnSync('g++', ['--version']).status === 0;
if (!HAVE_GXX) console.warn('runtime-build-tensorrt: builds skipped: g++ is not installed (.ci/run installs it)');
/** The environment of every build here: the default compiler (g++), whatever CXX the machine running the tests sets. */
const ENV: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'CXX'));

/** A fake TensorRT + CUDA install: the four folders the command takes as flags. */
interface FakeInstall {
  tensorrtInclude: string;
  tensorrtLib: string;
  cudaInclude: string;
  cudaLib: string;
}

const CUDA_FUNCTIONS = ['cudaMalloc', 'cudaFree', 'cudaMemcpyAsync', 'cudaStreamCreate', 'cudaStreamSynchronize', 'cudaStreamDestroy', 'cudaGetErrorString'];
const NVINFER_FUNCTIONS = ['createInferRuntime_INTERNAL', 'getInferLibVersion'];

function versionHeader(major: number, minor: number, patch: number, style: 'direct' | 'enterprise'): string {
  const body = style === 'direct'
    ? [`#define NV_TENSORRT_MAJOR ${major} //!< TensorRT major version.`, `#define NV_TENSORRT_MINOR ${minor} //!< TensorRT minor version.`,
      `#define NV_TENSORRT_PATCH ${patch} //!< TensorRT patch version.`, '#define NV_TENSORRT_BUILD 0']
    : [`#define TRT_MAJOR_ENTERPRISE ${major}`, `#define TRT_MINOR_ENTERPRISE ${minor}`, `#define TRT_PATCH_ENTERPRISE ${patch}`, '#define TRT_BUILD_ENTERPRISE 1',
      '#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< TensorRT major version.', '#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE //!< TensorRT minor version.',
      '#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE //!< TensorRT patch version.', '#define NV_TENSORRT_BUILD TRT_BUILD_ENTERPRISE'];
  return ['// Test fixture: NVIDIA\'s NvInferVersion.h layout over kd-edge\'s compat declarations (not TensorRT).', '#ifndef NV_INFER_VERSION_H',
    '#define NV_INFER_VERSION_H', ...body, '/* marks the compat declarations, so the runner\'s hello says so */', '#define KD_COMPAT_TENSORRT_HEADERS 1', '#endif', ''].join('\n');
}

function gxx(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('g++', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => void (err += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`g++ ${args.join(' ')}: ${err}`))));
  });
}

/** Lays out a fake install; libnvinfer.so exports only the TensorRT entry points, libcudart.so only the CUDA ones. */
async function fakeInstall(dir: string, major: number, minor: number, patch: number, style: 'direct' | 'enterprise'): Promise<FakeInstall> {
  const f: FakeInstall = { tensorrtInclude: join(dir, 'trt', 'include'), tensorrtLib: join(dir, 'trt', 'lib'), cudaInclude: join(dir, 'cuda', 'include'), cudaLib: join(dir, 'cuda', 'lib64') };
  for (const d of Object.values(f)) await mkdir(d, { recursive: true });
  await writeFile(join(f.tensorrtInclude, 'NvInferVersion.h'), versionHeader(major, minor, patch, style));
  await copyFile(join(COMPAT, 'NvInferRuntime.h'), join(f.tensorrtInclude, 'NvInferRuntime.h'));
  await copyFile(join(COMPAT, 'cuda_runtime_api.h'), join(f.cudaInclude, 'cuda_runtime_api.h'));
  const common = ['-std=c++17', '-shared', '-fPIC', `-I${f.tensorrtInclude}`, `-I${f.cudaInclude}`, join(COMPAT, 'link-stub.cpp')];
  // One stub, two libraries: the names a library must not export are renamed away by the preprocessor.
  const hide = (names: string[]) => names.map((n) => `-D${n}=kd_test_hidden_${n}`);
  await Promise.all([
    gxx([...common, ...hide(CUDA_FUNCTIONS), '-o', join(f.tensorrtLib, 'libnvinfer.so')]),
    gxx([...common, ...hide(NVINFER_FUNCTIONS), '-o', join(f.cudaLib, 'libcudart.so')]),
  ]);
  return f;
}

function cli(args: string[], env: NodeJS.ProcessEnv = ENV): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', BIN, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => void (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => void (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function flags(f: FakeInstall): string[] {
  return ['--tensorrt-include', f.tensorrtInclude, '--tensorrt-lib', f.tensorrtLib, '--cuda-include', f.cudaInclude, '--cuda-lib', f.cudaLib];
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

async function rejection(p: Promise<unknown>): Promise<TrtBuildError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TrtBuildError);
  return err as TrtBuildError;
}

let root: string;
let shmDir: string;
let removeShm: () => Promise<void>;
let trt82: FakeInstall;
let trt10: FakeInstall;
/** A runner built by the first test: the "working runner" later failures must leave alone. */
let working: string | undefined;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-build-trt-'));
  ({ dir: shmDir, remove: removeShm } = await shmTempDir());
  if (HAVE_GXX) {
    [trt82, trt10] = await Promise.all([
      fakeInstall(join(root, 'trt-8.2'), 8, 2, 1, 'direct'),
      fakeInstall(join(root, 'trt-10.14'), 10, 14, 1, 'enterprise'),
    ]);
  }
}, 120_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await removeShm?.();
});

describe('NvInferVersion.h and the API generation', () => {
  it('reads the version written directly, through TRT_*_ENTERPRISE macros, and refuses a header without one', () => {
    expect(parseTensorrtVersionHeader(versionHeader(8, 2, 1, 'direct'))).toEqual({ major: 8, minor: 2, patch: 1, version: '8.2.1', api: 'bindings', compatHeaders: true });
    expect(parseTensorrtVersionHeader(versionHeader(10, 14, 1, 'enterprise').replace(/#define KD_COMPAT.*\n/, '')))
      .toEqual({ major: 10, minor: 14, patch: 1, version: '10.14.1', api: 'tensors', compatHeaders: false });
    // a commented-out define does not count
    expect(parseTensorrtVersionHeader('// #define NV_TENSORRT_MAJOR 8\n#define NV_TENSORRT_MINOR 2\n#define NV_TENSORRT_PATCH 1\n')).toBeUndefined();
    expect(parseTensorrtVersionHeader('#define NV_TENSORRT_MAJOR TRT_UNDEFINED\n#define NV_TENSORRT_MINOR 2\n#define NV_TENSORRT_PATCH 1\n')).toBeUndefined();
    expect([tensorrtApi(8, 0), tensorrtApi(8, 4), tensorrtApi(8, 5), tensorrtApi(8, 6), tensorrtApi(10, 0)]).toEqual(['bindings', 'bindings', 'tensors', 'tensors', 'tensors']);
  });

  it('refuses TensorRT 7 headers and an unreadable version with their own codes', async () => {
    const dir = join(root, 'trt-7');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'NvInferVersion.h'), versionHeader(7, 1, 3, 'direct'));
    expect((await rejection(readTensorrtVersion(dir))).code).toBe('AGENT_TRT_BUILD_UNSUPPORTED_VERSION');
    await writeFile(join(dir, 'NvInferVersion.h'), '#define NV_TENSORRT_MAJOR 8\n');
    const err = await rejection(readTensorrtVersion(dir));
    expect(err.code).toBe('AGENT_TRT_BUILD_VERSION_UNREADABLE');
    expect(err.message).toContain(join(dir, 'NvInferVersion.h'));
  });
});

describe('the runner source shipped with the agent', () => {
  it('is found from src/ and from dist/ (any module inside the package), and not outside it', async () => {
    const expected = join(PKG, 'native', 'trt-runner');
    expect(await locateRunnerSource()).toBe(expected);
    expect(await locateRunnerSource(join(PKG, 'dist', 'chunk-abc123.js'))).toBe(expected);
    expect(await locateRunnerSource(join(PKG, 'dist', 'bin', 'kd-agent.js'))).toBe(expected);
    const err = await rejection(locateRunnerSource(join(root, 'elsewhere', 'index.js')));
    expect(err.code).toBe('AGENT_TRT_BUILD_SOURCE_NOT_FOUND');
  });

  it('is in the npm package: npm pack lists the runner source and Makefile, and no built binary', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '-w', '@kd-edge/edge-agent'], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const [pack] = JSON.parse(r.stdout) as { files: { path: string }[] }[];
    const files = pack!.files.map((f) => f.path);
    for (const f of ['native/trt-runner/src/main.cpp', 'native/trt-runner/src/engine.cpp', 'native/trt-runner/src/json.hpp', 'native/trt-runner/Makefile']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.endsWith('/kd-trt-runner'))).toEqual([]);
  }, 130_000);
});

describe.skipIf(!HAVE_GXX)('kd-agent runtime build-tensorrt (g++, a fake TensorRT install)', () => {
  it('builds for TensorRT 8.2 (binding API), self-checks, and prints a runtime.trtRunner section that runs it', async () => {
    const dataDir = join(root, 'agent-82');
    const r = await cli(['runtime', 'build-tensorrt', '--data-dir', dataDir, '--shm-dir', shmDir, ...flags(trt82)]);
    expect(r.code, r.stderr).toBe(0);
    const out = join(dataDir, 'runtime', 'kd-trt-runner');
    expect(r.stdout).toContain(`built ${out}`);
    expect(r.stdout).toMatch(/TensorRT 8\.2\.1 headers .*\(kd-edge compat declarations: a compile check, not TensorRT\)/);
    expect(r.stdout).toContain('API: binding API (enqueueV2)');
    expect(r.stdout).toMatch(/self-check: ok: hello kd-trt-runner tensorrt 8\.2\.1, api bindings, libnvinfer 8\.2\.1, compat headers; unload of an unknown engine answered NO_ENGINE; shutdown exit 0/);
    // the printed lines are agent.yaml as agent-config.ts reads it
    const snippet = parseYaml(r.stdout.slice(r.stdout.indexOf('runtime:'))) as Record<string, unknown>;
    const config = validateAgentConfig({ keys: ['fleet.pub'], deviceId: 'cam-1', ...snippet });
    expect(config.runtime.trtRunner).toMatchObject({ command: [out, '--shm-dir', shmDir], shmDir });
    // only the binary is left in the folder (no temporary file), executable, and it is the runner the headers said
    expect(await readdir(join(dataDir, 'runtime'))).toEqual(['kd-trt-runner']);
    expect((await stat(out)).mode & 0o111).toBe(0o111);
    // linked as on a device: libnvinfer and libcudart from the given folders, found at run time through the RUNPATH
    const elf = spawnSync('readelf', ['-d', out], { encoding: 'utf8' });
    if (elf.status === 0) {
      expect(elf.stdout).toMatch(/NEEDED.*\[libnvinfer\.so\]/);
      expect(elf.stdout).toMatch(/NEEDED.*\[libcudart\.so\]/);
      expect(elf.stdout).toContain(`${trt82.tensorrtLib}:${trt82.cudaLib}`);
    }
    const client = await RunnerClient.start(config.runtime.trtRunner!.command, { handshakeTimeoutMs: 10_000 });
    try {
      expect(client.hello).toMatchObject({ runner: 'kd-trt-runner', impl: 'tensorrt', version: '8.2.1', api: 'bindings', library: '8.2.1', compatHeaders: true });
    } finally {
      await client.close();
    }
    working = join(root, 'working-runner');
    await copyFile(out, working);
  }, 240_000);

  it('builds for TensorRT 10.x (tensor-name API, TRT_*_ENTERPRISE version macros) over an existing runner, --json', async () => {
    expect(working).toBeDefined();
    const out = join(root, 'opt', 'kd-trt-runner');
    await mkdir(join(root, 'opt'), { recursive: true });
    await copyFile(working!, out);
    const r = await cli(['runtime', 'build-tensorrt', '--out', out, '--shm-dir', shmDir, '--json', ...flags(trt10)]);
    expect(r.code, r.stderr).toBe(0);
    const built = JSON.parse(r.stdout) as unknown;
    expect(built).toMatchObject({
      ok: true, path: out, replaced: true, source: join(PKG, 'native', 'trt-runner'),
      tensorrt: { version: '10.14.1', api: 'tensors', compatHeaders: true, include: trt10.tensorrtInclude, lib: trt10.tensorrtLib },
      cuda: { include: trt10.cudaInclude, lib: trt10.cudaLib },
      selfCheck: { hello: { version: '10.14.1', api: 'tensors', library: '10.14.1', compatHeaders: true }, exitCode: 0 },
      warnings: [],
      config: { runtime: { trtRunner: { command: [out, '--shm-dir', shmDir], shmDir } } },
    });
    expect(await sha256(out)).not.toBe(await sha256(working!));
    expect(await readdir(join(root, 'opt'))).toEqual(['kd-trt-runner']);
  }, 240_000);

  it('headers missing: names every folder searched, writes nothing', async () => {
    const empty = join(root, 'empty-include');
    await mkdir(empty, { recursive: true });
    const outDir = join(root, 'never');
    const r = await cli(['runtime', 'build-tensorrt', '--out', join(outDir, 'kd-trt-runner'), '--tensorrt-include', empty]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('AGENT_TRT_BUILD_HEADERS_NOT_FOUND');
    expect(r.stderr).toContain(`no NvInferRuntime.h + NvInferVersion.h in ${empty}`);
    expect(r.stdout).toBe('');
    await expect(stat(outDir)).rejects.toMatchObject({ code: 'ENOENT' });

    // CUDA's header and the libraries are searched too, each naming its folder
    const base: BuildTensorrtRunnerOptions = { out: join(outDir, 'kd-trt-runner'), ...trt82, env: ENV };
    let err = await rejection(buildTensorrtRunner({ ...base, cudaInclude: empty }));
    expect([err.code, err.message]).toEqual(['AGENT_TRT_BUILD_HEADERS_NOT_FOUND', expect.stringContaining(`no cuda_runtime_api.h in ${empty}`)]);
    err = await rejection(buildTensorrtRunner({ ...base, tensorrtLib: empty }));
    expect([err.code, err.message]).toEqual(['AGENT_TRT_BUILD_LIBS_NOT_FOUND', expect.stringContaining(`no libnvinfer.so in ${empty}`)]);
    await expect(stat(outDir)).rejects.toMatchObject({ code: 'ENOENT' });
  }, 120_000);

  it('compile failure (a broken header copy): the compiler\'s last lines, and the existing runner byte-identical', async () => {
    expect(working).toBeDefined();
    const broken = join(root, 'broken-include');
    await mkdir(broken, { recursive: true });
    await copyFile(join(trt82.tensorrtInclude, 'NvInferVersion.h'), join(broken, 'NvInferVersion.h'));
    const header = await readFile(join(trt82.tensorrtInclude, 'NvInferRuntime.h'), 'utf8');
    await writeFile(join(broken, 'NvInferRuntime.h'), header.slice(0, Math.floor(header.length / 2))); // cut mid-declaration
    const outDir = join(root, 'keep');
    await mkdir(outDir);
    const out = join(outDir, 'kd-trt-runner');
    await copyFile(working!, out);
    const before = await sha256(out);
    const err = await rejection(buildTensorrtRunner({ out, ...trt82, tensorrtInclude: broken, shmDir, env: ENV }));
    expect(err.code).toBe('AGENT_TRT_BUILD_COMPILE_FAILED');
    expect(err.message).toMatch(/^g\+\+ exited with 1; its last lines:\n/);
    expect(err.message).toMatch(/error:/);
    expect(await sha256(out)).toBe(before);
    expect(await readdir(outDir)).toEqual(['kd-trt-runner']);
  }, 180_000);

  it('compiler missing: --cxx, then CXX, named in the error; nothing written', async () => {
    const out = join(root, 'no-cxx', 'kd-trt-runner');
    let err = await rejection(buildTensorrtRunner({ out, ...trt82, cxx: join(root, 'no-such-g++') }));
    expect(err.code).toBe('AGENT_TRT_BUILD_COMPILER_NOT_FOUND');
    expect(err.message).toContain(`${join(root, 'no-such-g++')}" (from --cxx) does not run (ENOENT)`);
    err = await rejection(buildTensorrtRunner({ out, ...trt82, env: { ...ENV, CXX: join(root, 'no-such-c++') } }));
    expect(err.message).toContain(`${join(root, 'no-such-c++')}" (from CXX)`);
    await expect(stat(join(root, 'no-cxx'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('self-check failure (a binary that is not a runner): the existing runner stays, no temporary file', async () => {
    expect(working).toBeDefined();
    // A "compiler" that writes a program exiting before hello, as a runner missing its libraries would.
    const fakeCxx = join(root, 'fake-c++');
    await writeFile(fakeCxx, [
      '#!/bin/sh',
      'if [ "$1" = "--version" ]; then echo "fake-c++ 1.0"; exit 0; fi',
      'out=""',
      'while [ $# -gt 0 ]; do if [ "$1" = "-o" ]; then out="$2"; shift; fi; shift; done',
      'printf \'#!/bin/sh\\necho "libnvinfer.so.8: cannot open shared object file" >&2\\nexit 127\\n\' > "$out"',
      '',
    ].join('\n'));
    await chmod(fakeCxx, 0o755);
    const outDir = join(root, 'keep-2');
    await mkdir(outDir);
    const out = join(outDir, 'kd-trt-runner');
    await copyFile(working!, out);
    const before = await sha256(out);
    const err = await rejection(buildTensorrtRunner({ out, ...trt82, cxx: fakeCxx, shmDir, env: ENV }));
    expect(err.code).toBe('AGENT_TRT_BUILD_SELF_CHECK_FAILED');
    expect(err.message).toMatch(/^the built runner did not start and answer hello: /);
    expect(err.message).toContain('libnvinfer.so.8: cannot open shared object file');
    expect(await sha256(out)).toBe(before);
    expect(await readdir(outDir)).toEqual(['kd-trt-runner']);
  }, 60_000);
});

describe('kd-agent without a subcommand', () => {
  it('still runs the agent: --config is read (a missing file fails with its name)', async () => {
    const missing = join(root, 'nope', 'agent.yaml');
    const r = await cli(['--config', missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`config ${missing}: cannot read it (ENOENT)`);
  }, 60_000);
});
