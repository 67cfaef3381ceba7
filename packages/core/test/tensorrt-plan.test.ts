import { describe, expect, it } from 'vitest';
import { TrtPlanError } from '../src/tensorrt/errors.js';
import { buildTrtPlan, trtexecArgs, validateTrtPlan, type TrtPlan, type TrtPlanOptions } from '../src/tensorrt/trt-plan.js';

const base: TrtPlanOptions = {
  trtVersion: '8.6.1',
  precision: 'fp16',
  input: { name: 'images', shape: [1, 3, 320, 320] },
  onnxFile: 'yolov5n.onnx',
};

function planError(fn: () => unknown): TrtPlanError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TrtPlanError) return e;
    throw e;
  }
  throw new Error('no TrtPlanError thrown');
}

describe('buildTrtPlan', () => {
  it('fills the defaults', () => {
    expect(buildTrtPlan(base)).toEqual({
      planVersion: 1,
      trtVersion: '8.6.1',
      precision: 'fp16',
      input: { name: 'images', shape: [1, 3, 320, 320] },
      workspaceMiB: 1024,
      allowGpuFallback: false,
      layerPrecisions: [],
      onnxFile: 'yolov5n.onnx',
      engineFile: 'yolov5n.engine',
    });
  });

  it('allows GPU fallback by default on DLA', () => {
    expect(buildTrtPlan({ ...base, dlaCore: 1 })).toMatchObject({ dlaCore: 1, allowGpuFallback: true });
  });

  it('survives a JSON round trip through validateTrtPlan', () => {
    const plan = buildTrtPlan({ ...base, precision: 'int8', calibCacheFile: 'yolov5n.cache', dlaCore: 0 });
    expect(validateTrtPlan(JSON.parse(JSON.stringify(plan)))).toEqual(plan);
  });
});

describe('trtexecArgs', () => {
  it('fp16, static shape: no shape flags', () => {
    expect(trtexecArgs(buildTrtPlan(base))).toEqual([
      '--onnx=yolov5n.onnx',
      '--saveEngine=yolov5n.engine',
      '--fp16',
      '--memPoolSize=workspace:1024',
      '--skipInference',
    ]);
  });

  it('int8 with a calibration cache and local paths', () => {
    const plan = buildTrtPlan({ ...base, precision: 'int8', calibCacheFile: 'yolov5n.cache', workspaceMiB: 2048 });
    expect(
      trtexecArgs(plan, { onnxPath: '/data/m v1/yolov5n.onnx', calibPath: '/data/c.cache', enginePath: '/out/e.engine' }),
    ).toEqual([
      '--onnx=/data/m v1/yolov5n.onnx',
      '--saveEngine=/out/e.engine',
      '--int8',
      '--calib=/data/c.cache',
      '--memPoolSize=workspace:2048',
      '--skipInference',
    ]);
  });

  it('best with a dynamic profile on TensorRT 10 (memPoolSize with a unit suffix)', () => {
    const plan = buildTrtPlan({
      ...base,
      trtVersion: '10.3.0',
      precision: 'best',
      calibCacheFile: 'm.cache',
      input: { name: 'images', min: [1, 3, 320, 320], opt: [4, 3, 320, 320], max: [8, 3, 640, 640] },
    });
    expect(trtexecArgs(plan)).toEqual([
      '--onnx=yolov5n.onnx',
      '--saveEngine=yolov5n.engine',
      '--best',
      '--calib=m.cache',
      '--memPoolSize=workspace:1024M',
      '--minShapes=images:1x3x320x320',
      '--optShapes=images:4x3x320x320',
      '--maxShapes=images:8x3x640x640',
      '--skipInference',
    ]);
  });

  it('DLA with GPU fallback and per-layer precisions', () => {
    const plan = buildTrtPlan({
      ...base,
      precision: 'best',
      dlaCore: 0,
      layerPrecisions: [
        { layer: '*', precision: 'fp16' },
        { layer: '/model.24/m.0/Conv', precision: 'fp32' },
      ],
    });
    expect(trtexecArgs(plan).slice(3)).toEqual([
      '--memPoolSize=workspace:1024',
      '--useDLACore=0',
      '--allowGPUFallback',
      '--precisionConstraints=obey',
      '--layerPrecisions=*:fp16,/model.24/m.0/Conv:fp32',
      '--skipInference',
    ]);
  });

  it('DLA without GPU fallback', () => {
    const args = trtexecArgs(buildTrtPlan({ ...base, dlaCore: 1, allowGpuFallback: false }));
    expect(args).toContain('--useDLACore=1');
    expect(args).not.toContain('--allowGPUFallback');
  });

  it('uses the older spellings for older TensorRT', () => {
    expect(trtexecArgs(buildTrtPlan({ ...base, trtVersion: '8.5.2' })).slice(-2)).toEqual([
      '--memPoolSize=workspace:1024',
      '--buildOnly',
    ]);
    expect(trtexecArgs(buildTrtPlan({ ...base, trtVersion: '8.2.1' })).slice(-2)).toEqual([
      '--workspace=1024',
      '--buildOnly',
    ]);
  });

  it('refuses paths that could read as flags or break the argument', () => {
    const plan = buildTrtPlan(base);
    expect(() => trtexecArgs(plan, { onnxPath: '--verbose' })).toThrow(/onnxPath/);
    expect(() => trtexecArgs(plan, { enginePath: 'a\nb' })).toThrow(/enginePath/);
    expect(() => trtexecArgs(plan, { onnxPath: 'a=b.onnx' })).toThrow(/onnxPath/);
    expect(() => trtexecArgs(plan, { calibPath: 'c.cache' })).toThrow(/int8 or best/);
  });

  it('re-validates a hand-edited plan', () => {
    const plan = { ...buildTrtPlan(base), workspaceMiB: -1 } as TrtPlan;
    expect(planError(() => trtexecArgs(plan)).field).toBe('workspaceMiB');
  });
});

describe('validateTrtPlan', () => {
  const good = buildTrtPlan({ ...base, precision: 'int8', calibCacheFile: 'm.cache' });
  const cases: [string, Record<string, unknown>][] = [
    ['planVersion', { planVersion: 2 }],
    ['trtVersion', { trtVersion: 'eight' }],
    ['precision', { precision: 'fp32' }],
    ['input', { input: 'images' }],
    ['input.name', { input: { name: '--images', shape: [1, 3, 8, 8] } }],
    ['input.name', { input: { name: 'a=b', shape: [1] } }],
    ['input.name', { input: { name: 'input:0', shape: [1] } }],
    ['input.name', { input: { name: 'in put', shape: [1] } }],
    ['input.shape[2]', { input: { name: 'images', shape: [1, 3, 0, 8] } }],
    ['input.shape', { input: { name: 'images', shape: [] } }],
    ['input.opt[0]', { input: { name: 'images', min: [4, 3], opt: [2, 3], max: [8, 3] } }],
    ['input.max[1]', { input: { name: 'images', min: [1, 3], opt: [1, 3], max: [1, 2] } }],
    ['input.max', { input: { name: 'images', min: [1, 3], opt: [1, 3], max: [1] } }],
    ['input.shape', { input: { name: 'images', shape: [1], min: [1], opt: [1], max: [1] } }],
    ['workspaceMiB', { workspaceMiB: 1.5 }],
    ['dlaCore', { dlaCore: -1 }],
    ['allowGpuFallback', { allowGpuFallback: true }],
    ['layerPrecisions', { layerPrecisions: 'none' }],
    ['layerPrecisions[0].layer', { layerPrecisions: [{ layer: 'a,b', precision: 'fp32' }] }],
    ['layerPrecisions[0].precision', { layerPrecisions: [{ layer: 'a', precision: 'fp64' }] }],
    ['layerPrecisions[0].precision', { layerPrecisions: [{ layer: 'a', precision: 'fp16' }] }],
    ['onnxFile', { onnxFile: '../m.onnx' }],
    ['onnxFile', { onnxFile: '-m.onnx' }],
    ['engineFile', { engineFile: 'm.cache' }],
    ['calibCacheFile', { calibCacheFile: 'x y.cache' }],
    ['extra', { extra: 1 }],
  ];

  it.each(cases)('names %s', (field, patch) => {
    const e = planError(() => validateTrtPlan({ ...good, ...patch }));
    expect(e.code).toBe('TRT_PLAN_INVALID');
    expect(e.field).toBe(field);
    expect(e.message).toContain(field);
  });

  it('refuses a calibration cache on an fp16 plan', () => {
    const { calibCacheFile, ...rest } = good;
    expect(planError(() => validateTrtPlan({ ...rest, precision: 'fp16', calibCacheFile })).field).toBe('calibCacheFile');
  });

  it('refuses a non-object', () => {
    expect(planError(() => validateTrtPlan([])).field).toBe('(plan)');
  });
});
