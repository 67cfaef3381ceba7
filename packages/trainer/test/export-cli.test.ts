import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  classifierDescription, manifestRole, parseCalibCache, readOnnxFile, tensorValues, validateTrtPlan, verifyPackage, yoloDescription, loadPublicKey,
} from '@kd-edge/core';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { synthesizeDataset } from '../src/data/synth.js';
import { resolveOptions } from '../src/config.js';
import { EXPORT_SCHEMA } from '../src/export/export-schema.js';
import { formatExportTable, headDecodePattern, parseExclude, parseFormats, runExport, summariseSkipped, type ExportReport } from '../src/export/run-export.js';
import { runPackage } from '../src/export/run-package.js';
import { manifestTargets } from '../src/export/export-targets.js';
import { parseTrtVersions } from '../src/export/tensorrt-artifacts.js';
import { createClassifier } from '../src/model/classifier.js';
import { saveWeights } from '../src/model/weights-io.js';
import { createYoloModel } from '../src/model/yolo.js';
import { silentLogger } from '../src/util/logger.js';
import { runCli } from './cli-runner.js';


const cli = (args: string[]) => runCli(args);

let dir: string;
let yaml: string;
let weights: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kd-export-cli-'));
  yaml = (await synthesizeDataset({ out: join(dir, 'data'), train: 12, val: 6, imgsz: 64, classes: 2, seed: 3 })).yaml;
  await selectBackend('cpu', silentLogger);
  const model = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.25 }, 2), { seed: 1 });
  weights = join(dir, 'best.kdw');
  await saveWeights(weights, model, { meta: { names: ['circle', 'square'] } });
  model.dispose();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = (over: Record<string, unknown>) => resolveOptions(EXPORT_SCHEMA, [{ imgsz: 64, bench_runs: 2, calib_images: 6, sensitivity_images: 2, val_batch: 4, workers: 0, ...over }]).config;

describe('kd-trainer export', () => {
  let report: ExportReport;
  const out = () => join(dir, 'export');

  it('writes every format, validates and times each, and records the figures', async () => {
    report = await runExport(config({ weights, out: out(), formats: 'onnx,fp16,int8-dynamic,int8,trt', data: yaml, trt_version: '8.6.1' }));
    expect(report.rows.map((r) => r.format)).toEqual(['onnx', 'fp16', 'int8-dynamic', 'int8', 'int8', 'trt']);
    for (const r of report.rows.slice(0, 5)) {
      expect(existsSync(join(out(), r.file))).toBe(true);
      expect(r.bytes).toBe(statSync(join(out(), r.file)).size);
      expect(r.map50).toBeGreaterThanOrEqual(0);
      expect(r.p50Ms).toBeGreaterThan(0);
    }
    const [fp32, fp16, w8, int8, u8] = report.rows;
    expect(fp16!.bytes).toBeLessThan(fp32!.bytes * 0.55);
    expect(w8!.bytes).toBeLessThan(fp32!.bytes / 3);
    expect(int8!.bytes).toBeLessThan(fp32!.bytes / 3);
    expect(u8!.bytes).toBeLessThan(fp32!.bytes / 3);
    expect(report.calibration).toMatchObject({ images: 6, method: 'minmax' });
    expect(JSON.parse(readFileSync(join(out(), 'export.json'), 'utf8')).rows).toHaveLength(6);
  });

  it('writes both int8 files from one calibration, and the table says which target each file is for', async () => {
    const int8Rows = report.rows.filter((r) => r.format === 'int8');
    expect(int8Rows.map((r) => [r.file, r.variant, r.target])).toEqual([
      ['model.int8.onnx', 'S8S8', 'TensorRT, ARM64 CPU (ORT)'],
      ['model.int8.u8s8.onnx', 'U8S8', 'x86-64 CPU (ONNX Runtime)'],
    ]);
    expect(report.rows.find((r) => r.format === 'onnx')!.target).toBe('reference; CPU fallback');
    expect(report.rows.at(-1)!.target).toBe('TensorRT 8.6.1 (engine built on device)');
    // One calibration: the same scales everywhere; the activation zero points are the int8 ones + 128.
    const s8 = await readOnnxFile(join(out(), 'model.int8.onnx'));
    const u8 = await readOnnxFile(join(out(), 'model.int8.u8s8.onnx'));
    const values = (m: typeof s8) => new Map(m.graph!.initializer.map((t) => [t.name, { type: t.dataType, v: Array.from(tensorValues(t) as ArrayLike<number>) }]));
    const a = values(s8);
    const b = values(u8);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    let zps = 0;
    for (const [name, x] of a) {
      const y = b.get(name)!;
      if (x.type === 3 && y.type === 2) { // INT8 → UINT8: an activation zero point
        zps++;
        expect(y.v, name).toEqual(x.v.map((z) => z + 128));
      } else {
        expect(y, name).toEqual(x);
      }
    }
    expect(zps).toBeGreaterThan(50);
    const table = formatExportTable(report.rows);
    expect(table[0]).toMatch(/Speed-up +Target$/);
    expect(table.find((l) => l.startsWith('int8 U8S8'))).toMatch(/model\.int8\.u8s8\.onnx .*× +x86-64 CPU \(ONNX Runtime\)$/);
    expect(table.find((l) => l.startsWith('int8 S8S8'))).toMatch(/model\.int8\.onnx .*TensorRT, ARM64 CPU \(ORT\)$/);
    expect(report.host).toEqual({ arch: expect.stringMatching(/^(x86_64|aarch64|\w+)$/), cpus: expect.any(Number) });
  });

  it('int8 keeps the Detect decode in float and quantizes the rest', async () => {
    const int8 = await readOnnxFile(join(out(), 'model.int8.onnx'));
    const ops = (re: RegExp) => int8.graph!.node.filter((n) => re.test(n.name));
    expect(ops(/^\/model\.24\/(Sigmoid|Mul|Add|Split)/).length).toBeGreaterThan(0);
    for (const n of int8.graph!.node) {
      if (n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear') continue;
      if (!/^\/model\.24\/(?!m\.)/.test(n.name)) continue;
      // A decode node reads no dequantized tensor except the Detect convolutions' outputs.
      for (const i of n.input) expect(i.includes('/model.24/m.') || !/_DequantizeLinear|_dq/i.test(i)).toBe(true);
    }
    expect(int8.graph!.node.filter((n) => n.opType === 'QuantizeLinear').length).toBeGreaterThan(50);
    const session = await ort.InferenceSession.create(join(out(), 'model.int8.onnx'));
    const r = await session.run({ images: new ort.Tensor('float32', new Float32Array(3 * 64 * 64).fill(0.5), [1, 3, 64, 64]) });
    expect(r.output0!.dims).toEqual([1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 7]);
    await session.release();
  });

  it('calib.cache names tensors of model.onnx in the TensorRT version asked for, and the plan builds with trtexec flags', async () => {
    const cache = parseCalibCache(readFileSync(join(out(), 'calib.cache'), 'utf8'));
    expect(cache.version).toBe(8601);
    expect(cache.algorithm).toBe('EntropyCalibration2');
    const fp32 = await readOnnxFile(join(out(), 'model.onnx'));
    const tensors = new Set([...fp32.graph!.input.map((i) => i.name), ...fp32.graph!.node.flatMap((n) => n.output)]);
    expect(cache.scales.size).toBeGreaterThan(50);
    for (const name of cache.scales.keys()) expect(tensors.has(name)).toBe(true);
    // images are 0..1: amax 1 → scale 1/127.
    expect(cache.scales.get('images')).toBeCloseTo(1 / 127, 6);
    const plan = validateTrtPlan(JSON.parse(readFileSync(join(out(), 'trt-plan.json'), 'utf8')));
    expect(plan).toMatchObject({ precision: 'best', onnxFile: 'model.onnx', calibCacheFile: 'calib.cache', trtVersion: '8.6.1' });
    expect(report.tensorrt!.trtexec).toEqual(expect.arrayContaining(['trtexec', '--onnx=model.onnx', '--best', '--calib=calib.cache']));
  });

  it('takes an ONNX file instead of weights (any YOLOv5 export)', async () => {
    const r = await runExport(config({ weights: join(out(), 'model.onnx'), out: join(dir, 'from-onnx'), formats: 'int8', data: yaml, calib_method: 'percentile', activation_type: 'uint8' }));
    expect(r.rows.map((x) => [x.format, x.file])).toEqual([['onnx', 'model.onnx'], ['int8', 'model.int8.u8s8.onnx']]);
    expect(existsSync(join(dir, 'from-onnx', 'model.int8.onnx'))).toBe(false);
    expect(r.info.names).toEqual(['circle', 'square']);
  });

  it('times a static-batch export (a teacher) at its own batch', async () => {
    const r = await runExport(config({ weights, out: join(dir, 'b4'), formats: 'fp16', batch_size: 4 }));
    expect(r.rows.map((x) => [x.format, x.latencyBatch])).toEqual([['onnx', 4], ['fp16', 4]]);
    expect(r.rows.every((x) => x.p50Ms! > 0)).toBe(true);
  });

  it('exports a classifier (no detection metrics)', async () => {
    const clf = createClassifier(classifierDescription({ depth_multiple: 0.33, width_multiple: 0.25 }, 3), { seed: 2 });
    const file = join(dir, 'clf.kdw');
    await saveWeights(file, clf);
    clf.dispose();
    const r = await runExport(config({ weights: file, out: join(dir, 'clf'), formats: 'fp16,int8-dynamic' }));
    expect(r.info.task).toBe('classify');
    expect(r.rows.every((x) => x.map50 === undefined && x.p50Ms! > 0)).toBe(true);
  });

  it('refuses unknown formats, int8 without calibration images and bad patterns, by name', async () => {
    expect(() => parseFormats('onnx,tflite')).toThrow(/'tflite' is not one of onnx, fp16, int8-dynamic, int8, trt/);
    expect(() => parseExclude('/model.[/')).toThrow(/--exclude: \/model\.\[\/ is not a valid regular expression/);
    expect(parseExclude('a, /^\\/model\\.24\\//')).toEqual(['a', /^\/model\.24\//]);
    await expect(runExport(config({ weights, out: join(dir, 'x'), formats: 'int8' }))).rejects.toMatchObject({ code: 'EXPORT_NEEDS_CALIBRATION' });
  });

  it('sums up the nodes left in float by op type and reason, constants aside', () => {
    const notes = summariseSkipped('int8', [
      { node: 'a', opType: 'Pow', reason: 'op type not in the QDQ registry' },
      { node: 'b', opType: 'Pow', reason: 'op type not in the QDQ registry' },
      { node: 'c', opType: 'Constant', reason: 'op type not in the QDQ registry' },
      { node: 'd', opType: 'Mul', reason: 'excluded' },
    ]);
    expect(notes).toEqual(['int8: 2 Pow left in float (op type not in the QDQ registry): a, b', 'int8: 1 Mul left in float (excluded): d']);
  });

  it('finds the Detect decode scope of a model', async () => {
    const re = headDecodePattern(await readOnnxFile(join(out(), 'model.onnx')))!;
    expect(re.test('/model.24/Sigmoid')).toBe(true);
    expect(re.test('/model.24/m.1/Conv')).toBe(false);
    expect(re.test('/model.23/cv3/conv/Conv')).toBe(false);
  });
});

describe('kd-trainer keys gen, package and verify (real CLI)', () => {
  it('signs a package that verify accepts, and refuses a tampered copy with its code', async () => {
    const keys = join(dir, 'keys');
    const gen = await cli(['keys', 'gen', '--out', dir, '--name', 'fleet']);
    expect(gen.code).toBe(0);
    expect(gen.stdout).toMatch(/^key [0-9a-f]{16}:/);
    expect(statSync(join(dir, 'fleet.key')).mode & 0o777).toBe(0o600);
    const pkg = join(dir, 'pkg');
    const p = await cli(['package', '--from', join(dir, 'export'), '--name', 'shapes', '--version', '1.2.0', '--sign', join(dir, 'fleet.key'),
      '--out', pkg, '--val-data', yaml, '--val-images', '3']);
    expect(p.code, p.stderr).toBe(0);
    const ok = await cli(['verify', `${pkg}.tar`, '--trust', join(dir, 'fleet.pub')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^OK shapes 1\.2\.0: \d+ files verified/);
    const v = await verifyPackage(pkg, { trustedKeys: [await loadPublicKey(join(dir, 'fleet.pub'))] });
    expect(v.manifest.models.map((m) => m.file).sort()).toEqual(['model.dynamic.int8.onnx', 'model.fp16.onnx', 'model.int8.onnx', 'model.int8.u8s8.onnx', 'model.onnx']);
    expect(v.manifest.targets!.map((t) => t.file)).toEqual(expect.arrayContaining(['model.int8.onnx', 'model.onnx']));
    expect(v.manifest.tensorrt).toEqual({ plan: 'trt-plan.json', calibCache: 'calib.cache' });
    expect(v.manifest.val).toBeDefined();
    expect(v.manifest.names).toEqual(['circle', 'square']);
    expect(v.manifest.metrics['metrics/mAP50(B)']).toBeGreaterThanOrEqual(0);

    const tampered = join(dir, 'tampered');
    cpSync(pkg, tampered, { recursive: true });
    const f = join(tampered, 'model.int8.onnx');
    const bytes = readFileSync(f);
    bytes[bytes.length - 10] ^= 0xff;
    writeFileSync(f, bytes);
    const bad = await cli(['verify', tampered, '--trust', join(dir, 'fleet.pub')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('[PACKAGE_HASH_MISMATCH]');
    const other = await cli(['keys', 'gen', '--out', keys.replace(/keys$/, ''), '--name', 'other']);
    expect(other.code).toBe(0);
    const untrusted = await cli(['verify', pkg, '--trust', join(dir, 'other.pub')]);
    expect(untrusted.code).toBe(2);
    expect(untrusted.stderr).toContain('[PACKAGE_KEY_UNTRUSTED]');
  });

  it('first-run edges: keys gen makes its folder, a missing file is one line, a failed package leaves the old one whole', async () => {
    const keysDir = join(dir, 'new', 'keys');
    const gen = await cli(['keys', 'gen', '--out', keysDir]);
    expect(gen.code, gen.stderr).toBe(0);
    expect(existsSync(join(keysDir, 'kd-edge.key'))).toBe(true);

    const missing = await cli(['package', '--from', join(dir, 'export'), '--name', 'shapes', '--version', '1.0.0', '--sign', join(dir, 'nope.key'), '--out', join(dir, 'p0')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toContain('nope.key');
    expect(existsSync(join(dir, 'p0'))).toBe(false);
    const noWeights = await cli(['val', '--weights', join(dir, 'nope.kdw'), '--data', yaml]);
    expect(noWeights.code).toBe(2);
    expect(noWeights.stderr.trim().split('\n')).toHaveLength(1);
    expect(noWeights.stderr).toContain('nope.kdw');

    // A package that fails half-way (its val set cannot be read) leaves the earlier package as it was.
    const good = await cli(['package', '--from', join(dir, 'export'), '--name', 'shapes', '--version', '1.0.0', '--sign', join(keysDir, 'kd-edge.key'), '--out', join(dir, 'p1'), '--no-tar']);
    expect(good.code, good.stderr).toBe(0);
    const before = readFileSync(join(dir, 'p1', 'manifest.json'), 'utf8');
    writeFileSync(join(dir, 'bad.yaml'), 'path: /nonexistent\ntrain: a\nval: b\nnames: [x, y]\n');
    const bad = await cli(['package', '--from', join(dir, 'export'), '--name', 'shapes', '--version', '1.0.1', '--sign', join(keysDir, 'kd-edge.key'), '--out', join(dir, 'p1'), '--no-tar', '--val-data', join(dir, 'bad.yaml')]);
    expect(bad.code).toBe(2);
    expect(readFileSync(join(dir, 'p1', 'manifest.json'), 'utf8')).toBe(before);
    expect(readdirSync(dir).filter((n) => n.startsWith('.p1.'))).toEqual([]);
  });

  it('packages a teacher with its .kdw (--role teacher --weights-file) that verify accepts, and refuses weights of other classes', async () => {
    const keyArgs = ['--sign', join(dir, 'fleet.key')];
    const pkg = join(dir, 'teacher-pkg');
    const p = await cli(['package', '--from', join(dir, 'export'), '--name', 'shapes-teacher', '--version', '1.0.0', ...keyArgs, '--out', pkg,
      '--role', 'teacher', '--weights-file', weights]);
    expect(p.code, p.stderr).toBe(0);
    const ok = await cli(['verify', `${pkg}.tar`, '--trust', join(dir, 'fleet.pub')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^OK shapes-teacher 1\.0\.0 \(teacher: never served\): \d+ files verified/);
    const v = await verifyPackage(pkg, { trustedKeys: [await loadPublicKey(join(dir, 'fleet.pub'))], roles: ['teacher'] });
    expect(manifestRole(v.manifest)).toBe('teacher');
    expect(v.manifest.weights).toEqual({ path: 'weights/model.kdw', format: 'kdw' });
    expect(readFileSync(join(pkg, 'weights', 'model.kdw'))).toEqual(readFileSync(weights));
    expect(v.files.find((f) => f.path === 'weights/model.kdw')?.size).toBe(statSync(weights).size);

    // The rest through the library: each CLI start costs seconds.
    const base = { from: join(dir, 'export'), name: 'shapes', version: '1.0.1', sign: join(dir, 'fleet.key'), tar: false, logger: silentLogger };
    const plain = await runPackage({ ...base, out: join(dir, 'plain') });
    expect('role' in plain.manifest || 'weights' in plain.manifest).toBe(false);
    expect('role' in JSON.parse(readFileSync(join(dir, 'plain', 'manifest.json'), 'utf8'))).toBe(false);

    const model = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.25 }, 2), { seed: 2 });
    const other = join(dir, 'other-classes.kdw');
    await saveWeights(other, model, { meta: { names: ['circle', 'triangle'] } });
    model.dispose();
    await expect(runPackage({ ...base, out: join(dir, 'p-mismatch'), weightsFile: other }))
      .rejects.toThrow(/other-classes\.kdw has classes \["circle","triangle"\] but the export \(and so the manifest\) has \["circle","square"\]/);
    expect(existsSync(join(dir, 'p-mismatch'))).toBe(false);
    await expect(runPackage({ ...base, out: join(dir, 'p-onnx'), weightsFile: join(dir, 'export', 'model.onnx') }))
      .rejects.toThrow(/--weights-file: .*model\.onnx is not a kd-trainer \.kdw/);
    const badRole = await cli(['package', '--from', join(dir, 'export'), '--name', 'shapes', '--version', '1.0.1', ...keyArgs, '--role', 'student']);
    expect(badRole.code).not.toBe(0);
    expect(badRole.stderr).toMatch(/model, teacher/);
  }, 300_000);

  it('inspect prints inputs, outputs, opset and the op histogram of an ONNX file', async () => {
    const r = await cli(['inspect', join(dir, 'export', 'model.onnx')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('images');
    expect(r.stdout).toContain('output0');
    expect(r.stdout).toMatch(/Conv/);
    const bad = join(dir, 'bad.onnx');
    writeFileSync(bad, readFileSync(join(dir, 'export', 'model.onnx')).subarray(0, 1000));
    const r2 = await cli(['inspect', bad]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/bad\.onnx.*\[ONNX_/);
  });
});

describe('issue 17: targets and per-version TensorRT files', () => {
  const base = () => ({ name: 'shapes', version: '2.0.0', sign: join(dir, 'fleet.key'), tar: false, logger: silentLogger });

  it('package writes targets from the export: U8S8 for x86_64, S8S8 for aarch64, fp32 everywhere, the TensorRT engine', async () => {
    // The export's own timing decides whether U8S8 may serve on x86: fix it so the test does not depend on this machine.
    const from = join(dir, 'export-targets');
    cpSync(join(dir, 'export'), from, { recursive: true });
    const rep = JSON.parse(readFileSync(join(from, 'export.json'), 'utf8')) as ExportReport;
    rep.host = { arch: 'x86_64', cpus: 2 };
    for (const r of rep.rows) if (r.variant === 'U8S8') r.speedup = 1.5;
    writeFileSync(join(from, 'export.json'), JSON.stringify(rep));
    const { manifest } = await runPackage({ ...base(), from, out: join(dir, 'pkg-targets') });
    expect(manifest.targets!.map((t) => [t.file, t.precision, t.runtime, t.arch, t.quantization])).toEqual([
      ['model.int8.u8s8.onnx', 'int8', 'onnxruntime', ['x86_64'], 'u8s8'],
      ['model.int8.onnx', 'int8', 'onnxruntime', ['aarch64'], 's8s8'],
      ['model.onnx', 'fp32', 'onnxruntime', ['x86_64', 'aarch64'], undefined],
      ['model.onnx', 'int8', 'tensorrt', ['aarch64', 'x86_64'], undefined],
    ]);
    const v = await verifyPackage(join(dir, 'pkg-targets'), { trustedKeys: [await loadPublicKey(join(dir, 'fleet.pub'))] });
    expect(v.manifest.targets).toEqual(manifest.targets);
    expect(v.files.map((f) => f.path)).toContain('model.int8.u8s8.onnx');
  });

  it('leaves out of an architecture an int8 file the export measured slower than fp32 there', () => {
    const rows = [
      { format: 'onnx' as const, file: 'model.onnx', speedup: 1 },
      { format: 'int8' as const, file: 'model.int8.onnx', variant: 'S8S8' as const, speedup: 0.2 },
      { format: 'int8' as const, file: 'model.int8.u8s8.onnx', variant: 'U8S8' as const, speedup: 0.9 },
    ];
    const x86 = manifestTargets(rows, { hostArch: 'x86_64' });
    expect(x86.targets.map((t) => [t.file, t.arch])).toEqual([['model.int8.onnx', ['aarch64']], ['model.onnx', ['x86_64', 'aarch64']]]);
    expect(x86.dropped).toEqual([expect.stringMatching(/^model\.int8\.u8s8\.onnx: measured 0\.90× fp32 on this x86-64 host/)]);
    const arm = manifestTargets(rows, { hostArch: 'aarch64' });
    expect(arm.targets.map((t) => [t.file, t.arch])).toEqual([['model.int8.u8s8.onnx', ['x86_64']], ['model.onnx', ['x86_64', 'aarch64']]]);
  });

  it('--trt-versions writes one cache body with a header per version and a plan per version; package lists them', async () => {
    const out = join(dir, 'export-trt');
    const r = await runExport(config({ weights, out, formats: 'trt', data: yaml, sensitivity_images: 0, trt_versions: '8.2.1, 10.3.0' }));
    expect(r.tensorrt!.versions).toEqual([
      { trtVersion: '8.2.1', plan: 'trt-plan.8.2.1.json', calibCache: 'calib.8.2.1.cache' },
      { trtVersion: '10.3.0', plan: 'trt-plan.10.3.0.json', calibCache: 'calib.10.3.0.cache' },
    ]);
    expect(existsSync(join(out, 'calib.cache')) || existsSync(join(out, 'trt-plan.json'))).toBe(false);
    const [a, b] = ['calib.8.2.1.cache', 'calib.10.3.0.cache'].map((f) => readFileSync(join(out, f), 'utf8').split('\n'));
    expect(a![0]).toBe('TRT-8201-EntropyCalibration2');
    expect(b![0]).toBe('TRT-100300-EntropyCalibration2');
    expect(a!.slice(1)).toEqual(b!.slice(1));
    expect(a!.length).toBeGreaterThan(50);
    for (const v of ['8.2.1', '10.3.0']) {
      expect(validateTrtPlan(JSON.parse(readFileSync(join(out, `trt-plan.${v}.json`), 'utf8')))).toMatchObject({ trtVersion: v, precision: 'best', calibCacheFile: `calib.${v}.cache` });
    }
    expect(r.rows.at(-1)).toMatchObject({ format: 'trt', target: 'TensorRT 8.2.1, 10.3.0 (engine built on device)' });
    const { manifest } = await runPackage({ ...base(), from: out, out: join(dir, 'pkg-trt') });
    expect(manifest.tensorrt).toEqual({ plan: 'trt-plan.8.2.1.json', calibCache: 'calib.8.2.1.cache', versions: r.tensorrt!.versions });
    expect(manifest.files.map((f) => f.path).filter((p) => /calib|plan/.test(p)).sort()).toEqual(
      ['calib.10.3.0.cache', 'calib.8.2.1.cache', 'trt-plan.10.3.0.json', 'trt-plan.8.2.1.json']);
    expect(manifest.targets!.map((t) => [t.file, t.runtime, t.precision])).toEqual([['model.onnx', 'onnxruntime', 'fp32'], ['model.onnx', 'tensorrt', 'int8']]);
    expect(() => parseTrtVersions('8.2')).toThrow(/'8\.2' is not a TensorRT version major\.minor\.patch/);
    expect(() => parseTrtVersions('8.2.1,8.2.1')).toThrow(/8\.2\.1 is listed twice/);
  });
});
