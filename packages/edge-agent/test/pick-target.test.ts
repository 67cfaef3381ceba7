// Issue 17: which file of a package serves on which device, from the manifest's targets and the device facts.
import { parseManifest, type Manifest, type ManifestTarget } from '@kd-edge/core';
import { describe, expect, it } from 'vitest';
import { pickTarget, pickTensorrt, targetArch, type TargetFacts } from '../src/model/pick-target.js';

const FILES = ['model.onnx', 'model.fp16.onnx', 'model.int8.onnx', 'model.int8.u8s8.onnx', 'trt-plan.8.2.1.json', 'calib.8.2.1.cache', 'trt-plan.10.3.0.json', 'calib.10.3.0.cache'];

const U8: ManifestTarget = { file: 'model.int8.u8s8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['x86_64'], quantization: 'u8s8' };
const S8: ManifestTarget = { file: 'model.int8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['aarch64'], quantization: 's8s8' };
const FP32: ManifestTarget = { file: 'model.onnx', precision: 'fp32', runtime: 'onnxruntime', arch: ['x86_64', 'aarch64'] };
const TRT: ManifestTarget = { file: 'model.onnx', precision: 'int8', runtime: 'tensorrt', arch: ['aarch64', 'x86_64'] };

/** A manifest that parseManifest accepts, with the given targets (and the two-version TensorRT files). */
function manifest(targets: ManifestTarget[] | undefined, models = ['model.onnx', 'model.fp16.onnx', 'model.int8.onnx', 'model.int8.u8s8.onnx']): Manifest {
  return parseManifest({
    manifestVersion: 1, name: 'shapes', version: '1.0.0', createdAt: '2026-11-01T12:00:00Z', task: 'detect',
    input: { name: 'images', shape: [1, 3, 64, 64], layout: 'NCHW', dtype: 'float32', normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] }, letterbox: { color: [114, 114, 114], auto: false, stride: 32 } },
    output: { name: 'output0', layout: 'yolov5-decoded', shape: [1, 252, 7] },
    names: ['circle', 'square'], strides: [8, 16, 32], anchors: [[10, 13], [30, 61], [116, 90]],
    precision: models.includes('model.onnx') ? 'fp32' : 'int8',
    models: models.map((file) => ({ file, format: 'onnx', precision: /int8/.test(file) ? 'int8' : /fp16/.test(file) ? 'fp16' : 'fp32', ...(file === 'model.onnx' ? { default: true } : {}) })),
    files: FILES.map((path) => ({ path, sha256: 'a'.repeat(64), size: 1 })),
    metrics: {},
    tensorrt: {
      plan: 'trt-plan.8.2.1.json', calibCache: 'calib.8.2.1.cache',
      versions: [{ trtVersion: '8.2.1', plan: 'trt-plan.8.2.1.json', calibCache: 'calib.8.2.1.cache' }, { trtVersion: '10.3.0', plan: 'trt-plan.10.3.0.json', calibCache: 'calib.10.3.0.cache' }],
    },
    ...(targets ? { targets } : {}),
  });
}

const cpu = (arch: string, tensorrt: string | null = null): TargetFacts => ({ arch, tensorrt, executionProvider: 'cpu' });

describe('pickTarget', () => {
  const cases: { name: string; targets: ManifestTarget[] | undefined; facts: TargetFacts; file: string; precision: string; reason: RegExp }[] = [
    { name: 'x86, no TensorRT: U8S8', targets: [U8, S8, FP32, TRT], facts: cpu('x64'), file: 'model.int8.u8s8.onnx', precision: 'int8', reason: /^int8 U8S8 for x86_64 ONNX Runtime CPU/ },
    { name: 'x86 as uname spells it', targets: [U8, S8, FP32], facts: cpu('x86_64'), file: 'model.int8.u8s8.onnx', precision: 'int8', reason: /U8S8/ },
    { name: 'x86 without U8S8: fp32, not S8S8', targets: [S8, FP32], facts: cpu('x64'), file: 'model.onnx', precision: 'fp32', reason: /^fp32 for x86_64/ },
    {
      name: 'x86, S8S8 wrongly listed for x86 first: skipped, fp32', facts: cpu('x64'), file: 'model.onnx', precision: 'fp32',
      targets: [{ ...S8, arch: ['x86_64', 'aarch64'] }, FP32], reason: /skipped model\.int8\.onnx \(s8s8, slower than fp32 here\)/,
    },
    {
      name: 'x86, nothing for x86 listed: fp32 fallback', facts: cpu('x64'), file: 'model.onnx', precision: 'fp32',
      targets: [S8, { ...FP32, arch: ['aarch64'] }], reason: /^no target for x86_64 ONNX Runtime CPU: the fp32 model/,
    },
    {
      name: 'x86, fp16 listed for x86: never on a CPU', facts: cpu('x64'), file: 'model.onnx', precision: 'fp32',
      targets: [{ file: 'model.fp16.onnx', precision: 'fp16', runtime: 'onnxruntime', arch: ['x86_64'] }, FP32], reason: /skipped model\.fp16\.onnx/,
    },
    { name: 'aarch64 (Jetson CPU): S8S8', targets: [U8, S8, FP32, TRT], facts: cpu('arm64'), file: 'model.int8.onnx', precision: 'int8', reason: /^int8 S8S8 for aarch64/ },
    { name: 'aarch64 without S8S8: fp32', targets: [U8, FP32], facts: cpu('aarch64'), file: 'model.onnx', precision: 'fp32', reason: /^fp32 for aarch64/ },
    { name: 'an architecture no target names: fp32', targets: [U8, S8, FP32], facts: cpu('riscv64'), file: 'model.onnx', precision: 'fp32', reason: /architecture riscv64/ },
    { name: 'a CUDA provider: the default model', targets: [U8, S8, FP32], facts: { arch: 'x64', tensorrt: null, executionProvider: 'cuda' }, file: 'model.onnx', precision: 'fp32', reason: /cuda provider/ },
    { name: 'old package without targets: its default model', targets: undefined, facts: cpu('x64'), file: 'model.onnx', precision: 'fp32', reason: /lists no targets/ },
  ];
  it.each(cases)('$name', ({ targets, facts, file, precision, reason }) => {
    const p = pickTarget(manifest(targets), facts);
    expect([p.model.file, p.model.precision]).toEqual([file, precision]);
    expect(p.reason).toMatch(reason);
    expect(p.tensorrt).toBeUndefined();
  });

  it('an old package whose default is an int8 file still serves it: nothing says which kind it is', () => {
    const m = manifest(undefined, ['model.int8.onnx']);
    expect(pickTarget(m, cpu('x64')).model.file).toBe('model.int8.onnx');
  });

  it('with TensorRT: records that TensorRT would serve with the files of the device version; ONNX Runtime still serves the CPU pick', () => {
    const jetson = pickTarget(manifest([U8, S8, FP32, TRT]), cpu('arm64', '8.2.1'));
    expect(jetson.model.file).toBe('model.int8.onnx');
    expect(jetson.tensorrt).toEqual({
      wouldServe: true, plan: 'trt-plan.8.2.1.json', calibCache: 'calib.8.2.1.cache', trtVersion: '8.2.1', fp16Fallback: false,
      reason: 'TensorRT 8.2.1: trt-plan.8.2.1.json with calib.8.2.1.cache',
    });
    const x86 = pickTarget(manifest([U8, S8, FP32, TRT]), cpu('x64', '10.3.0'));
    expect([x86.model.file, x86.tensorrt?.calibCache]).toEqual(['model.int8.u8s8.onnx', 'calib.10.3.0.cache']);
  });

  it('with a TensorRT version the package has no cache for: fp16, and says so', () => {
    const p = pickTarget(manifest([S8, FP32, TRT]), cpu('arm64', '8.5.2'));
    expect(p.tensorrt).toMatchObject({ wouldServe: true, fp16Fallback: true, plan: 'trt-plan.8.2.1.json' });
    expect(p.tensorrt!.calibCache).toBeUndefined();
    expect(p.tensorrt!.reason).toBe('TensorRT 8.5.2 has no calibration cache or plan in the package (it has 8.2.1, 10.3.0): the engine is built fp16');
    // 8.2 and 8.2.0 are the same version; 8.2.1 is another one (the cache header names the patch)
    expect(pickTensorrt(manifest([TRT]), '8.2').fp16Fallback).toBe(true);
    expect(pickTensorrt(manifest([TRT]), '8.2.1.6').trtVersion).toBe('8.2.1');
  });

  it('with TensorRT but no TensorRT target: TensorRT would not serve', () => {
    expect(pickTarget(manifest([U8, FP32]), cpu('x64', '10.3.0')).tensorrt).toMatchObject({ wouldServe: false });
  });

  it('maps Node and uname architecture names', () => {
    expect(['x64', 'x86_64', 'arm64', 'aarch64', 'arm', 'ia32'].map(targetArch)).toEqual(['x86_64', 'x86_64', 'aarch64', 'aarch64', 'armv7l', undefined]);
  });
});
