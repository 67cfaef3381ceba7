import { mkdtemp, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTrtPlan, writeCalibCache } from '@kd-edge/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { benchmarkEngine, trtexecBenchArgs } from '../src/runtime/trtexec-bench.js';
import { buildEngine } from '../src/runtime/trtexec-build.js';
import { EngineCache } from '../src/runtime/engine-cache.js';
import { locateTrtexec } from '../src/runtime/trtexec-locate.js';
import { runTrtexec } from '../src/runtime/trtexec-process.js';
import { detectTrtexecVersion } from '../src/runtime/trtexec-version.js';
import { trtexecLatencyMs } from '../src/runtime/trtexec-report.js';
import { RuntimeError } from '../src/runtime/runtime-error.js';

const STANDIN = fileURLToPath(new URL('./fixtures/trtexec-standin.mjs', import.meta.url));
const SHA = 'a'.repeat(64);
let root: string;
let logFile: string;

async function rejection(p: Promise<unknown>): Promise<RuntimeError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(RuntimeError);
    return e as RuntimeError;
  }
  throw new Error('expected a rejection');
}

async function loggedArgs(): Promise<string[][]> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]);
}

/** A package folder as `kd-trainer package` lays it out; the name has a space and shell metacharacters on purpose. */
async function makePackage(name: string, planVersion = '10.3.0'): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.int8.onnx'), 'not really onnx');
  await writeFile(join(dir, 'calib.cache'), writeCalibCache(new Map([['images', 1]]), { trtVersion: planVersion }));
  const plan = buildTrtPlan({
    trtVersion: planVersion, precision: 'int8', input: { name: 'images', shape: [1, 3, 64, 64] },
    onnxFile: 'model.int8.onnx', calibCacheFile: 'calib.cache', engineFile: 'model.engine', workspaceMiB: 256,
  });
  await writeFile(join(dir, 'trt-plan.json'), JSON.stringify(plan));
  return dir;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-runtime-trtexec-'));
  logFile = join(root, 'argv.log');
  process.env.KD_TRTEXEC_STANDIN_LOG = logFile;
});
afterEach(async () => {
  delete process.env.KD_TRTEXEC_STANDIN_VERSION;
  delete process.env.KD_TRTEXEC_STANDIN_FAIL;
  delete process.env.KD_TRTEXEC_STANDIN_SLEEP_MS;
  await rm(logFile, { force: true });
});
afterAll(async () => {
  delete process.env.KD_TRTEXEC_STANDIN_LOG;
  await rm(root, { recursive: true, force: true });
});

describe('locateTrtexec', () => {
  it('prefers the explicit path, then PATH, then the fallbacks, else undefined', async () => {
    const bin = join(root, 'bin');
    await mkdir(bin, { recursive: true });
    await symlink(STANDIN, join(bin, 'trtexec'));
    expect(await locateTrtexec({ path: STANDIN, envPath: bin })).toBe(STANDIN);
    expect(await locateTrtexec({ envPath: `relative/dir:${bin}`, fallbacks: [] })).toBe(join(bin, 'trtexec'));
    expect(await locateTrtexec({ envPath: '', fallbacks: [join(root, 'nope'), STANDIN] })).toBe(STANDIN);
    expect(await locateTrtexec({ envPath: '', fallbacks: [join(root, 'nope')] })).toBeUndefined();
  });

  it('throws RUNTIME_TRTEXEC_NOT_FOUND for an explicit path that is not executable', async () => {
    const plain = join(root, 'plain-file');
    await writeFile(plain, '');
    expect((await rejection(locateTrtexec({ path: plain }))).code).toBe('RUNTIME_TRTEXEC_NOT_FOUND');
    expect((await rejection(locateTrtexec({ path: join(root, 'missing') }))).code).toBe('RUNTIME_TRTEXEC_NOT_FOUND');
  });
});

describe('runTrtexec and version detection', () => {
  it('detects the version from the banner of --help', async () => {
    expect(await detectTrtexecVersion(STANDIN)).toBe('10.3.0');
    process.env.KD_TRTEXEC_STANDIN_VERSION = '8.2.1';
    expect(await detectTrtexecVersion(STANDIN)).toBe('8.2.1');
  });

  it('fails with the output tail on an unknown flag, and with NOT_FOUND for a missing executable', async () => {
    const err = await rejection(runTrtexec(STANDIN, ['--noSuchFlag']));
    expect(err.code).toBe('RUNTIME_TRTEXEC_FAILED');
    expect(err.outputTail).toContain('Unknown option: --noSuchFlag');
    expect(err.message).toContain('exited with code 1');
    expect((await rejection(runTrtexec(join(root, 'missing-trtexec'), ['--help']))).code).toBe('RUNTIME_TRTEXEC_NOT_FOUND');
  });

  it('stops trtexec past the timeout', async () => {
    process.env.KD_TRTEXEC_STANDIN_SLEEP_MS = '5000';
    const err = await rejection(runTrtexec(STANDIN, ['--help'], { timeoutMs: 300 }));
    expect(err.code).toBe('RUNTIME_TRTEXEC_TIMEOUT');
  });
});

describe('buildEngine', () => {
  it('builds from trt-plan.json with argv (no shell), then reuses the cached engine', async () => {
    const pkg = await makePackage('pkg one; $(touch pwned) `x`');
    const cacheDir = join(root, 'cache-1');
    const first = await buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'Orin', cacheDir });
    expect(first.cached).toBe(false);
    expect(first.trtVersion).toBe('10.3.0');
    expect(first.args).toEqual([
      `--onnx=${join(pkg, 'model.int8.onnx')}`,
      expect.stringMatching(/^--saveEngine=.*\.tmp-.*\/model\.engine$/),
      '--int8',
      `--calib=${join(pkg, 'calib.cache')}`,
      '--memPoolSize=workspace:256M',
      '--skipInference',
    ]);
    expect(first.enginePath).toBe(join(new EngineCache(cacheDir).keyDir({ packageSha256: SHA, trtVersion: '10.3.0', gpu: 'Orin' }), 'model.engine'));
    expect(JSON.parse(await readFile(first.enginePath, 'utf8'))).toMatchObject({ standin: 'trtexec', precision: 'int8' });
    // No shell ran: the metacharacters in the folder name did nothing.
    expect(await readdir(root)).not.toContain('pwned');

    const second = await buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'Orin', cacheDir });
    expect(second).toMatchObject({ cached: true, enginePath: first.enginePath });
    // --help (version) twice and one build: the second deploy built nothing.
    const builds = (await loggedArgs()).filter((a) => a.some((x) => x.startsWith('--onnx=')));
    expect(builds).toHaveLength(1);

    // Another GPU or TensorRT version is another key.
    const other = await buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'Xavier', cacheDir, trtVersion: '10.3.0' });
    expect(other.cached).toBe(false);
    expect(other.enginePath).not.toBe(first.enginePath);
  });

  it('spells flags for the device TensorRT version, not the plan one', async () => {
    process.env.KD_TRTEXEC_STANDIN_VERSION = '8.2.1';
    const pkg = await makePackage('pkg-82', '8.6.1');
    const built = await buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'NVIDIA Tegra X1', cacheDir: join(root, 'cache-2') });
    expect(built.trtVersion).toBe('8.2.1');
    expect(built.args).toContain('--buildOnly');
    expect(built.args).toContain('--workspace=256');
  });

  it('fails with RUNTIME_TRTEXEC_FAILED and the tail, leaving nothing in the cache', async () => {
    process.env.KD_TRTEXEC_STANDIN_FAIL = 'build';
    const pkg = await makePackage('pkg-fail');
    const cacheDir = join(root, 'cache-3');
    const err = await rejection(buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'Orin', cacheDir, trtVersion: '10.3.0' }));
    expect(err.code).toBe('RUNTIME_TRTEXEC_FAILED');
    expect(err.outputTail).toContain('Building engine failed');
    const gpuDirs = await readdir(join(cacheDir, SHA, 'trt-10.3.0'));
    expect(gpuDirs).toEqual([]);
  });

  it('refuses a package whose plan is invalid or names a missing file', async () => {
    const pkg = await makePackage('pkg-bad');
    await rm(join(pkg, 'calib.cache'));
    const missing = await rejection(buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'Orin', cacheDir: join(root, 'c4'), trtVersion: '10.3.0' }));
    expect(missing.code).toBe('RUNTIME_TRTEXEC_PLAN');
    expect(missing.message).toContain('calib.cache');
    await writeFile(join(pkg, 'trt-plan.json'), JSON.stringify({ planVersion: 2 }));
    const bad = await rejection(buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'Orin', cacheDir: join(root, 'c4'), trtVersion: '10.3.0' }));
    expect(bad.code).toBe('RUNTIME_TRTEXEC_PLAN');
    expect(bad.message).toContain('planVersion');
  });
});

describe('benchmarkEngine', () => {
  async function engineFor(version: string, name: string): Promise<string> {
    process.env.KD_TRTEXEC_STANDIN_VERSION = version;
    const pkg = await makePackage(name);
    return (await buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'Orin', cacheDir: join(root, `bc-${name}`) })).enginePath;
  }

  it('runs --loadEngine with warm-up, iterations and three percentiles, and parses the summary', async () => {
    const enginePath = await engineFor('10.3.0', 'bench-10');
    const r = await benchmarkEngine({ trtexec: STANDIN, enginePath, trtVersion: '10.3.0', warmUpMs: 0, iterations: 50 });
    expect(r.args).toEqual([`--loadEngine=${enginePath}`, '--warmUp=0', '--iterations=50', '--duration=0', '--percentile=90,95,99']);
    const l = trtexecLatencyMs(r);
    expect(l.estimated).toEqual([]);
    expect(l.min).toBeLessThanOrEqual(l.p50);
    expect(l.p50).toBeLessThanOrEqual(l.p90);
    expect(l.p95).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.max);
    expect(r.gpuCompute?.median).toBe(1.2);
    expect(r.throughputQps).toBeGreaterThan(0);
  });

  it('asks an old trtexec for one percentile and reads its summary', async () => {
    const enginePath = await engineFor('8.2.1', 'bench-82');
    const r = await benchmarkEngine({ trtexec: STANDIN, enginePath, trtVersion: '8.2.1', iterations: 20, shapes: { name: 'images', dims: [1, 3, 64, 64] } });
    expect(r.args).toContain('--percentile=99');
    expect(r.args).toContain('--shapes=images:1x3x64x64');
    expect(r.endToEnd).toBeDefined();
    expect(trtexecLatencyMs(r).estimated).toEqual(['p90', 'p95']);
  });

  it('reports an engine of another TensorRT version as RUNTIME_TRTEXEC_FAILED with the tail', async () => {
    const enginePath = await engineFor('8.6.1', 'bench-mismatch');
    process.env.KD_TRTEXEC_STANDIN_VERSION = '10.3.0';
    const err = await rejection(benchmarkEngine({ trtexec: STANDIN, enginePath, trtVersion: '10.3.0' }));
    expect(err.code).toBe('RUNTIME_TRTEXEC_FAILED');
    expect(err.outputTail).toContain('Version tag does not match');
  });

  it('validates its arguments', () => {
    expect(() => trtexecBenchArgs({ enginePath: '-x', trtVersion: '10.3.0' })).toThrow(RangeError);
    expect(() => trtexecBenchArgs({ enginePath: 'm.engine', trtVersion: '10.3.0', iterations: 0 })).toThrow(/iterations/);
    expect(() => trtexecBenchArgs({ enginePath: 'm.engine', trtVersion: '10.3.0', shapes: { name: 'a,b', dims: [1] } })).toThrow(/shapes.name/);
  });
});

describe('EngineCache', () => {
  it('validates keys and ignores incomplete entries', async () => {
    const cache = new EngineCache(join(root, 'ec'));
    expect(() => cache.keyDir({ packageSha256: 'xyz', trtVersion: '8.6.1', gpu: 'Orin' })).toThrow(/packageSha256/);
    expect(() => cache.keyDir({ packageSha256: SHA, trtVersion: 'eight', gpu: 'Orin' })).toThrow(RangeError);
    const key = { packageSha256: SHA, trtVersion: '8.6.1', gpu: 'Orin' };
    expect(cache.keyDir(key)).not.toBe(cache.keyDir({ ...key, gpu: 'Orin ' }));
    const slot = await cache.reserve(key, 'm.engine');
    await writeFile(slot.enginePath, 'engine');
    expect(await cache.lookup(key, 'm.engine')).toBeUndefined();
    const entry = await slot.commit();
    expect(await cache.lookup(key, 'm.engine')).toMatchObject({ enginePath: entry.enginePath, size: 6 });
    await cache.evictPackage(SHA);
    expect(await cache.lookup(key, 'm.engine')).toBeUndefined();
  });
});
