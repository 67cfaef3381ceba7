import { describe, expect, it } from 'vitest';
import { PackageError } from '../src/package/errors.js';
import { defaultModel, isIsoDateTime, MANIFEST_VERSION, manifestRole, parseManifest, type Manifest } from '../src/package/manifest.js';

const sha = (c: string): string => c.repeat(64);

function valid(): Manifest {
  return {
    manifestVersion: MANIFEST_VERSION,
    name: 'yolov5n-pets',
    version: '1.2.0-rc.1+build.7',
    createdAt: '2026-05-01T12:00:00.250+02:00',
    task: 'detect',
    input: {
      name: 'images',
      shape: ['batch', 3, 320, 320],
      layout: 'NCHW',
      dtype: 'float32',
      normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
      letterbox: { color: [114, 114, 114], auto: false, stride: 32 },
    },
    output: { name: 'output0', layout: 'yolov5-decoded', shape: ['batch', 6300, 7] },
    names: ['cat', 'dog'],
    strides: [8, 16, 32],
    anchors: [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
    precision: 'int8',
    models: [
      { file: 'model.onnx', precision: 'fp32', format: 'onnx' },
      { file: 'model.int8.onnx', precision: 'int8', format: 'onnx', default: true, metrics: { 'metrics/mAP50(B)': 0.48 } },
    ],
    files: [
      { path: 'calib.cache', sha256: sha('a'), size: 10 },
      { path: 'model.int8.onnx', sha256: sha('b'), size: 20 },
      { path: 'model.onnx', sha256: sha('c'), size: 30 },
      { path: 'trt-plan.json', sha256: sha('d'), size: 5 },
      { path: 'val/images/a.jpg', sha256: sha('e'), size: 0 },
      { path: 'val/labels/a.txt', sha256: sha('f'), size: 1 },
      { path: 'weights/model.kdw', sha256: sha('0'), size: 40 },
    ],
    metrics: { 'metrics/mAP50(B)': 0.5 },
    tensorrt: { plan: 'trt-plan.json', calibCache: 'calib.cache' },
    val: { images: 'val/images', labels: 'val/labels' },
    signature: { algorithm: 'ed25519', keyId: '0123456789abcdef', value: `${'A'.repeat(86)}==` },
  };
}

/** A deep copy of the valid manifest with `edit` applied. */
function edited(edit: (m: Record<string, any>) => void): unknown {
  const m = structuredClone(valid()) as Record<string, any>;
  edit(m);
  return m;
}

function refusal(json: unknown): PackageError {
  try {
    parseManifest(json);
  } catch (err) {
    expect(err).toBeInstanceOf(PackageError);
    return err as PackageError;
  }
  throw new Error('parseManifest accepted the manifest');
}

describe('parseManifest', () => {
  it('accepts a complete manifest and returns an equal, separate copy', () => {
    const m = valid();
    const parsed = parseManifest(m);
    expect(parsed).toEqual(m);
    expect(parsed.input).not.toBe(m.input);
    expect(defaultModel(parsed).file).toBe('model.int8.onnx');
  });

  it('accepts a teacher with weights, and reads a manifest without role or weights as a serving model', () => {
    const teacher = parseManifest(edited((m) => {
      m.role = 'teacher';
      m.weights = { path: 'weights/model.kdw', format: 'kdw' };
    }));
    expect(manifestRole(teacher)).toBe('teacher');
    expect(teacher.weights).toEqual({ path: 'weights/model.kdw', format: 'kdw' });
    expect(manifestRole(parseManifest(edited((m) => (m.role = 'model'))))).toBe('model');

    // A manifest from before roles: nothing is added, so it round-trips (and its signature payload is unchanged).
    const old = parseManifest(valid());
    expect('role' in old).toBe(false);
    expect('weights' in old).toBe(false);
    expect(manifestRole(old)).toBe('model');
  });

  it('accepts a classifier without letterbox, strides or anchors', () => {
    const json = edited((m) => {
      m.task = 'classify';
      m.output = { name: 'logits', layout: 'logits', shape: [1, 2] };
      m.strides = [];
      m.anchors = [];
      delete m.input.letterbox;
      delete m.tensorrt;
      delete m.val;
      delete m.signature;
    });
    expect(parseManifest(json).task).toBe('classify');
  });

  it.each<[string, (m: Record<string, any>) => void, string, RegExp]>([
    ['name not a slug', (m) => (m.name = 'Yolo V5'), 'name', /"Yolo V5" \(allowed: a slug/],
    ['leading zero in version', (m) => (m.version = '1.02.0'), 'version', /semver/],
    ['leading zero in pre-release', (m) => (m.version = '1.2.0-rc.01'), 'version', /semver/],
    ['date without zone', (m) => (m.createdAt = '2026-05-01T12:00:00'), 'createdAt', /ISO 8601/],
    ['impossible date', (m) => (m.createdAt = '2026-02-30T12:00:00Z'), 'createdAt', /ISO 8601/],
    ['unknown task', (m) => (m.task = 'segment'), 'task', /'detect' \| 'classify'/],
    ['zero dimension', (m) => (m.input.shape[2] = 0), 'input.shape[2]', /integer > 0 or a symbolic name/],
    ['three dimensions', (m) => m.input.shape.pop(), 'input.shape', /four dimensions/],
    ['NHWC layout', (m) => (m.input.layout = 'NHWC'), 'input.layout', /'NCHW'/],
    ['uint8 input', (m) => (m.input.dtype = 'uint8'), 'input.dtype', /'float32'/],
    ['zero std', (m) => (m.input.normalisation.std[1] = 0), 'input.normalisation.std[1]', /> 0/],
    ['mean per channel', (m) => (m.input.normalisation.mean = [0, 0]), 'input.normalisation.mean', /3 values/],
    ['padding colour 256', (m) => (m.input.letterbox.color[0] = 256), 'input.letterbox.color[0]', /0-255/],
    ['auto not boolean', (m) => (m.input.letterbox.auto = 'no'), 'input.letterbox.auto', /true \| false/],
    ['detect without letterbox', (m) => delete m.input.letterbox, 'input.letterbox', /required when task is 'detect'/],
    ['decoded width vs classes', (m) => (m.output.shape[2] = 85), 'output.shape[2]', /5 \+ names.length = 7/],
    ['logits for a detector', (m) => (m.output.layout = 'logits'), 'output.layout', /'yolov5-decoded' \| 'yolov5-raw'/],
    ['empty class name', (m) => (m.names[1] = ''), 'names[1]', /non-empty string/],
    ['anchors per stride', (m) => m.anchors.pop(), 'anchors', /one row per stride \(3\)/],
    ['odd anchors', (m) => m.anchors[0].pop(), 'anchors[0]', /even/],
    ['stride 0', (m) => (m.strides[0] = 0), 'strides[0]', /integer > 0/],
    ['unknown precision', (m) => (m.models[0].precision = 'int4'), 'models[0].precision', /'fp32' \| 'fp16' \| 'int8'/],
    ['model not listed', (m) => (m.models[0].file = 'other.onnx'), 'models[0].file', /listed in files/],
    ['model not onnx', (m) => (m.models[0].file = 'calib.cache'), 'models[0].file', /\.onnx/],
    ['two defaults', (m) => (m.models[0].default = true), 'models', /at most one/],
    ['precision vs default model', (m) => (m.precision = 'fp32'), 'precision', /'int8', the precision of the default model/],
    ['upper-case hash', (m) => (m.files[0].sha256 = 'A'.repeat(64)), 'files[0].sha256', /64 lower-case hex/],
    ['negative size', (m) => (m.files[0].size = -1), 'files[0].size', /integer >= 0/],
    ['fractional size', (m) => (m.files[0].size = 1.5), 'files[0].size', /integer >= 0/],
    ['repeated path', (m) => (m.files[1].path = 'calib.cache'), 'files[1].path', /not listed before/],
    ['manifest listed', (m) => (m.files[0].path = 'manifest.json'), 'files[0].path', /never listed/],
    ['dot segment', (m) => (m.files[0].path = 'a/./b'), 'files[0].path', /"\." segment/],
    ['file under a file', (m) => (m.files[0].path = 'model.onnx/x'), 'files[0].path', /parent "model.onnx"/],
    ['metric not a number', (m) => (m.metrics['metrics/mAP50(B)'] = '0.5'), 'metrics["metrics/mAP50(B)"]', /finite number/],
    ['unknown role', (m) => (m.role = 'server'), 'role', /'model' \| 'teacher'/],
    ['weights not listed', (m) => (m.weights = { path: 'weights/best.kdw', format: 'kdw' }), 'weights.path', /listed in files/],
    ['weights not a .kdw', (m) => (m.weights = { path: 'calib.cache', format: 'kdw' }), 'weights.path', /ending in \.kdw/],
    ['weights in another format', (m) => (m.weights = { path: 'weights/model.kdw', format: 'pt' }), 'weights.format', /'kdw'/],
    ['weights without format', (m) => (m.weights = { path: 'weights/model.kdw' }), 'weights.format', /required/],
    ['plan not listed', (m) => (m.tensorrt.plan = 'plan.json'), 'tensorrt.plan', /listed in files/],
    ['empty val dir', (m) => (m.val.images = 'val/pictures'), 'val.images', /at least one listed file/],
    ['other signature algorithm', (m) => (m.signature.algorithm = 'rsa'), 'signature.algorithm', /'ed25519'/],
    ['short signature', (m) => (m.signature.value = 'AAAA'), 'signature.value', /64 bytes/],
    ['unknown field', (m) => (m.comment = 'hi'), 'comment', /no such field/],
    ['unknown nested field', (m) => (m.input.mean = [0]), 'input.mean', /no such field/],
    ['missing field', (m) => delete m.names, 'names', /required/],
    ['manifestVersion as text', (m) => (m.manifestVersion = '1'), 'manifestVersion', /the integer 1/],
  ])('refuses %s with PACKAGE_MANIFEST_INVALID naming the field', (_, edit, field, message) => {
    const err = refusal(edited(edit));
    expect(err.code).toBe('PACKAGE_MANIFEST_INVALID');
    expect(err.field).toBe(field);
    expect(err.message).toContain(`invalid manifest field ${field}:`);
    expect(err.message).toMatch(message);
  });

  it('refuses another manifestVersion with PACKAGE_MANIFEST_VERSION', () => {
    const err = refusal(edited((m) => (m.manifestVersion = 2)));
    expect(err.code).toBe('PACKAGE_MANIFEST_VERSION');
    expect(err.message).toMatch(/manifestVersion 2 is not supported/);
  });

  it.each(['../x', 'val/../../etc/passwd', '/etc/passwd', 'C:/x', 'val\\..\\x'])('refuses the escaping path %j with PACKAGE_PATH_ESCAPE', (path) => {
    const err = refusal(edited((m) => (m.files[0].path = path)));
    expect(err.code).toBe('PACKAGE_PATH_ESCAPE');
    expect(err.path).toBe(path);
  });

  it('refuses an escaping model or plan path with PACKAGE_PATH_ESCAPE', () => {
    expect(refusal(edited((m) => (m.models[0].file = '../model.onnx'))).code).toBe('PACKAGE_PATH_ESCAPE');
    expect(refusal(edited((m) => (m.val.labels = '/var/labels'))).code).toBe('PACKAGE_PATH_ESCAPE');
    expect(refusal(edited((m) => (m.weights = { path: '../best.kdw', format: 'kdw' }))).code).toBe('PACKAGE_PATH_ESCAPE');
  });

  it('refuses a root that is not an object', () => {
    for (const json of [null, [], 'manifest', 1]) expect(refusal(json).code).toBe('PACKAGE_MANIFEST_INVALID');
  });
});

describe('isIsoDateTime', () => {
  it('accepts RFC 3339 date-times and refuses near misses', () => {
    for (const t of ['2026-05-01T12:00:00Z', '2024-02-29T23:59:59.999999999-08:00', '1970-01-01T00:00:00+00:00']) expect(isIsoDateTime(t), t).toBe(true);
    for (const t of ['2026-05-01', '2026-05-01 12:00:00Z', '2025-02-29T00:00:00Z', '2026-13-01T00:00:00Z', '2026-05-01T24:00:00Z',
      '2026-05-01T12:60:00Z', '2026-05-01T12:00:00+25:00', '2026-05-01T12:00Z']) {
      expect(isIsoDateTime(t), t).toBe(false);
    }
  });
});
