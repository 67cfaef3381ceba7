import { TrtPlanError } from './errors.js';
import { parseTrtVersion, trtAtLeast } from './trt-version.js';

/** Network-wide precisions a plan can ask trtexec for (`--fp16`, `--int8`, `--best`). */
export const TRT_PRECISIONS = ['fp16', 'int8', 'best'] as const;
/** Network-wide precision: fp16, int8 (non-int8 layers stay fp32), or best (int8 + fp16 + fp32). */
export type TrtPrecision = (typeof TRT_PRECISIONS)[number];

/** Precisions a single layer can be pinned to. */
export const TRT_LAYER_PRECISIONS = ['fp32', 'fp16', 'int8'] as const;
/** Precision of one layer override. */
export type TrtLayerPrecision = (typeof TRT_LAYER_PRECISIONS)[number];

/** Pins one layer (a TensorRT layer name, usually the ONNX node name) or every other layer (`*`) to a precision. */
export interface TrtLayerPrecisionOverride {
  layer: string;
  precision: TrtLayerPrecision;
}

/** An input with a fixed shape: the ONNX model's own shape is built, nothing is passed to trtexec. */
export interface TrtStaticInput {
  name: string;
  shape: number[];
}

/** An input with a dynamic optimisation profile (`--minShapes/--optShapes/--maxShapes`). */
export interface TrtDynamicInput {
  name: string;
  min: number[];
  opt: number[];
  max: number[];
}

/** How to build one TensorRT engine from an ONNX model with trtexec; plain JSON, stored next to the model. */
export interface TrtPlan {
  planVersion: 1;
  /** TensorRT version the engine is built with, e.g. `8.6.1`; selects flag spellings and the cache header. */
  trtVersion: string;
  precision: TrtPrecision;
  input: TrtStaticInput | TrtDynamicInput;
  /** Builder workspace pool in MiB. */
  workspaceMiB: number;
  /** Build for this DLA core (Jetson); absent for the GPU. */
  dlaCore?: number;
  /** Let layers DLA cannot run fall back to the GPU (only with `dlaCore`). */
  allowGpuFallback: boolean;
  /** Per-layer precisions, applied left to right with `--precisionConstraints=obey`. */
  layerPrecisions: TrtLayerPrecisionOverride[];
  onnxFile: string;
  /** INT8 calibration cache (int8/best only); leave out for QDQ models, which carry their own scales. */
  calibCacheFile?: string;
  engineFile: string;
}

/** Options of {@link buildTrtPlan}: a {@link TrtPlan} with defaults for the optional fields. */
export interface TrtPlanOptions {
  trtVersion: string;
  precision: TrtPrecision;
  input: TrtStaticInput | TrtDynamicInput;
  /** Default 1024. */
  workspaceMiB?: number;
  dlaCore?: number;
  /** Default: true when `dlaCore` is set, else false. */
  allowGpuFallback?: boolean;
  layerPrecisions?: TrtLayerPrecisionOverride[];
  onnxFile: string;
  calibCacheFile?: string;
  /** Default: `onnxFile` with `.onnx` replaced by `.engine`. */
  engineFile?: string;
}

/** Local paths that replace the plan's file names in {@link trtexecArgs}. */
export interface TrtexecPaths {
  onnxPath?: string;
  calibPath?: string;
  enginePath?: string;
}

const PLAN_KEYS = new Set([
  'planVersion',
  'trtVersion',
  'precision',
  'input',
  'workspaceMiB',
  'dlaCore',
  'allowGpuFallback',
  'layerPrecisions',
  'onnxFile',
  'calibCacheFile',
  'engineFile',
]);
// Names end up inside `--flag=name:spec,...`: no separators, quotes, whitespace or control characters, no leading '-'.
const NAME = /^(?!-)[^\s=,:'"\\\x00-\x1f\x7f]+$/;
const FILE_NAME = /^(?![.-])[A-Za-z0-9._+@-]{1,255}$/;
const UNSAFE_PATH = /[\x00-\x1f\x7f=]/;
const MAX_DIM = 2 ** 31 - 1;

function fail(field: string, message: string): never {
  throw new TrtPlanError(field, message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkName(field: string, v: unknown): string {
  if (typeof v !== 'string' || !NAME.test(v)) {
    fail(field, `${JSON.stringify(v)} must be a non-empty name without whitespace, '=', ',', ':', quotes or a leading '-'`);
  }
  return v;
}

function checkFileName(field: string, v: unknown): string {
  if (typeof v !== 'string' || !FILE_NAME.test(v)) {
    fail(field, `${JSON.stringify(v)} must be a plain file name (letters, digits, . _ + @ -; not starting with . or -)`);
  }
  return v;
}

function checkDims(field: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length < 1 || v.length > 8) fail(field, 'must be an array of 1 to 8 dimensions');
  v.forEach((d, i) => {
    if (!Number.isInteger(d) || d < 1 || d > MAX_DIM) fail(`${field}[${i}]`, `${JSON.stringify(d)} must be a positive integer`);
  });
  return [...(v as number[])];
}

function checkInput(v: unknown): TrtStaticInput | TrtDynamicInput {
  if (!isObject(v)) fail('input', 'must be an object with name and shape, or name and min/opt/max');
  const name = checkName('input.name', v.name);
  const dynamic = 'min' in v || 'opt' in v || 'max' in v;
  for (const key of Object.keys(v)) {
    if (!(key === 'name' || (dynamic ? ['min', 'opt', 'max'] : ['shape']).includes(key))) {
      fail(`input.${key}`, dynamic ? 'not allowed with min/opt/max' : 'unknown field (use shape, or min/opt/max)');
    }
  }
  if (!dynamic) return { name, shape: checkDims('input.shape', v.shape) };
  const min = checkDims('input.min', v.min);
  const opt = checkDims('input.opt', v.opt);
  const max = checkDims('input.max', v.max);
  if (opt.length !== min.length) fail('input.opt', `rank ${opt.length} differs from input.min's ${min.length}`);
  if (max.length !== min.length) fail('input.max', `rank ${max.length} differs from input.min's ${min.length}`);
  for (let i = 0; i < min.length; i++) {
    if (opt[i] < min[i]) fail(`input.opt[${i}]`, `${opt[i]} is below input.min[${i}] = ${min[i]}`);
    if (max[i] < opt[i]) fail(`input.max[${i}]`, `${max[i]} is below input.opt[${i}] = ${opt[i]}`);
  }
  return { name, min, opt, max };
}

/**
 * Checks a parsed plan JSON field by field and returns it as a {@link TrtPlan} (a copy). Throws a
 * {@link TrtPlanError} (code `TRT_PLAN_INVALID`) naming the first bad field; unknown fields are refused.
 */
export function validateTrtPlan(json: unknown): TrtPlan {
  if (!isObject(json)) fail('(plan)', 'must be a JSON object');
  for (const key of Object.keys(json)) if (!PLAN_KEYS.has(key)) fail(key, 'unknown field');
  if (json.planVersion !== 1) fail('planVersion', `${JSON.stringify(json.planVersion)} must be 1`);
  const trtVersion = json.trtVersion;
  try {
    parseTrtVersion(trtVersion as string);
  } catch (e) {
    fail('trtVersion', (e as Error).message);
  }
  const precision = json.precision as TrtPrecision;
  if (!TRT_PRECISIONS.includes(precision)) {
    fail('precision', `${JSON.stringify(precision)} must be one of ${TRT_PRECISIONS.join(', ')}`);
  }
  const input = checkInput(json.input);
  const workspaceMiB = json.workspaceMiB;
  if (!Number.isInteger(workspaceMiB) || (workspaceMiB as number) < 1 || (workspaceMiB as number) > 1 << 20) {
    fail('workspaceMiB', `${JSON.stringify(workspaceMiB)} must be an integer from 1 to 1048576`);
  }
  const dlaCore = json.dlaCore;
  if (dlaCore !== undefined && (!Number.isInteger(dlaCore) || (dlaCore as number) < 0 || (dlaCore as number) > 15)) {
    fail('dlaCore', `${JSON.stringify(dlaCore)} must be an integer from 0 to 15`);
  }
  if (typeof json.allowGpuFallback !== 'boolean') fail('allowGpuFallback', 'must be true or false');
  if (json.allowGpuFallback && dlaCore === undefined) fail('allowGpuFallback', 'only applies with dlaCore');
  if (!Array.isArray(json.layerPrecisions)) fail('layerPrecisions', 'must be an array (possibly empty)');
  const layerPrecisions = json.layerPrecisions.map((o: unknown, i: number): TrtLayerPrecisionOverride => {
    const field = `layerPrecisions[${i}]`;
    if (!isObject(o)) fail(field, 'must be an object { layer, precision }');
    for (const key of Object.keys(o)) if (key !== 'layer' && key !== 'precision') fail(`${field}.${key}`, 'unknown field');
    const layer = o.layer === '*' ? '*' : checkName(`${field}.layer`, o.layer);
    const p = o.precision as TrtLayerPrecision;
    if (!TRT_LAYER_PRECISIONS.includes(p)) {
      fail(`${field}.precision`, `${JSON.stringify(p)} must be one of ${TRT_LAYER_PRECISIONS.join(', ')}`);
    }
    // A layer can only be pinned to a precision the builder has enabled.
    if ((p === 'fp16' && precision === 'int8') || (p === 'int8' && precision === 'fp16')) {
      fail(`${field}.precision`, `${p} is not enabled by precision ${precision} (use best)`);
    }
    return { layer, precision: p };
  });
  const onnxFile = checkFileName('onnxFile', json.onnxFile);
  const engineFile = checkFileName('engineFile', json.engineFile);
  let calibCacheFile: string | undefined;
  if (json.calibCacheFile !== undefined) {
    calibCacheFile = checkFileName('calibCacheFile', json.calibCacheFile);
    if (precision === 'fp16') fail('calibCacheFile', 'an INT8 calibration cache needs precision int8 or best');
  }
  if (engineFile === onnxFile || engineFile === calibCacheFile) {
    fail('engineFile', 'must differ from onnxFile and calibCacheFile');
  }
  const plan: TrtPlan = {
    planVersion: 1,
    trtVersion: trtVersion as string,
    precision,
    input,
    workspaceMiB: workspaceMiB as number,
    allowGpuFallback: json.allowGpuFallback,
    layerPrecisions,
    onnxFile,
    engineFile,
  };
  if (dlaCore !== undefined) plan.dlaCore = dlaCore as number;
  if (calibCacheFile !== undefined) plan.calibCacheFile = calibCacheFile;
  return plan;
}

/**
 * Fills a plan's defaults and validates it (throws {@link TrtPlanError} naming the field).
 * @example
 * buildTrtPlan({ trtVersion: '8.6.1', precision: 'int8', input: { name: 'images', shape: [1, 3, 320, 320] },
 *   onnxFile: 'model.onnx', calibCacheFile: 'model.cache' })
 */
export function buildTrtPlan(options: TrtPlanOptions): TrtPlan {
  if (!isObject(options)) throw new TypeError('options must be an object');
  const onnxFile = options.onnxFile;
  const engineFile =
    options.engineFile ?? (typeof onnxFile === 'string' ? onnxFile.replace(/\.onnx$/i, '') + '.engine' : undefined);
  const plan: Record<string, unknown> = {
    planVersion: 1,
    trtVersion: options.trtVersion,
    precision: options.precision,
    input: options.input,
    workspaceMiB: options.workspaceMiB ?? 1024,
    allowGpuFallback: options.allowGpuFallback ?? options.dlaCore !== undefined,
    layerPrecisions: options.layerPrecisions ?? [],
    onnxFile,
    engineFile,
  };
  if (options.dlaCore !== undefined) plan.dlaCore = options.dlaCore;
  if (options.calibCacheFile !== undefined) plan.calibCacheFile = options.calibCacheFile;
  return validateTrtPlan(plan);
}

function checkPath(field: string, v: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.startsWith('-') || UNSAFE_PATH.test(v)) {
    throw new RangeError(`${field} ${JSON.stringify(v)} must be a non-empty path without '=', control characters or a leading '-'`);
  }
  return v;
}

const shapeSpec = (name: string, dims: number[]): string => `${name}:${dims.join('x')}`;

/**
 * trtexec arguments (an argv array, never a shell string) that build the plan's engine without running inference.
 * Flag spellings follow the plan's TensorRT version: `--memPoolSize=workspace:NM` from 10, `workspace:N` (MiB) from
 * 8.4, `--workspace=N` before; `--skipInference` from 8.6, `--buildOnly` before.
 * @example
 * execFile('trtexec', trtexecArgs(plan, { onnxPath: '/models/m.onnx', enginePath: '/models/m.engine' }))
 */
export function trtexecArgs(plan: TrtPlan, paths: TrtexecPaths = {}): string[] {
  const p = validateTrtPlan(plan);
  const version = parseTrtVersion(p.trtVersion);
  const args = [
    `--onnx=${checkPath('onnxPath', paths.onnxPath ?? p.onnxFile)}`,
    `--saveEngine=${checkPath('enginePath', paths.enginePath ?? p.engineFile)}`,
    `--${p.precision}`,
  ];
  if (p.calibCacheFile !== undefined || paths.calibPath !== undefined) {
    if (p.precision === 'fp16') throw new RangeError('calibPath needs a plan with precision int8 or best');
    args.push(`--calib=${checkPath('calibPath', paths.calibPath ?? (p.calibCacheFile as string))}`);
  }
  if (version.major >= 10) args.push(`--memPoolSize=workspace:${p.workspaceMiB}M`);
  else if (trtAtLeast(version, 8, 4)) args.push(`--memPoolSize=workspace:${p.workspaceMiB}`);
  else args.push(`--workspace=${p.workspaceMiB}`);
  if ('min' in p.input) {
    args.push(
      `--minShapes=${shapeSpec(p.input.name, p.input.min)}`,
      `--optShapes=${shapeSpec(p.input.name, p.input.opt)}`,
      `--maxShapes=${shapeSpec(p.input.name, p.input.max)}`,
    );
  }
  if (p.dlaCore !== undefined) {
    args.push(`--useDLACore=${p.dlaCore}`);
    if (p.allowGpuFallback) args.push('--allowGPUFallback');
  }
  if (p.layerPrecisions.length > 0) {
    args.push(
      '--precisionConstraints=obey',
      `--layerPrecisions=${p.layerPrecisions.map((o) => `${o.layer}:${o.precision}`).join(',')}`,
    );
  }
  args.push(trtAtLeast(version, 8, 6) ? '--skipInference' : '--buildOnly');
  return args;
}
