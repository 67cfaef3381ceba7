import { readFile } from 'node:fs/promises';
import { WeightsError } from '../errors.js';
import {
  describeValue,
  type GlobalHandler,
  PickleGlobal,
  PickleObject,
  type PickleOpaque,
  type PickleValue,
  readPickle,
  recordClass,
  VALUE_ONLY,
} from './pickle-reader.js';
import { ZipReader } from './zip-reader.js';

/** Element types of torch storages this reader decodes. */
export type TorchDtype = 'float16' | 'bfloat16' | 'float32' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** Tensor elements in row-major order: Float32Array for every float dtype, the matching integer array otherwise. */
export type TensorData = Float32Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

// torch/_utils.py and torch/storage.py: the storage classes torch.save names in persistent ids.
const STORAGE_DTYPES: Readonly<Record<string, TorchDtype>> = {
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'uint8',
};

const ITEM_SIZE: Readonly<Record<TorchDtype, number>> = {
  float16: 2,
  bfloat16: 2,
  float32: 4,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** Whether a dtype is floating point (its tensors decode to Float32Array). */
export function isFloatDtype(dtype: TorchDtype): boolean {
  return dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float32' || dtype === 'float64';
}

// The largest YOLOv5 weight (x6's 1280×1280×3×3) has 15M elements; the bound stops a stride-0 view of one
// element from asking for gigabytes.
const MAX_TENSOR_ELEMENTS = 2 ** 27;

type StorageElements = Uint16Array | Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** One storage of a checkpoint (`<archive>/data/<key>`), read and CRC-checked the first time a tensor on it is. */
export class TorchStorage implements PickleOpaque {
  readonly pyType = 'torch.Storage';
  #elements: StorageElements | undefined;
  constructor(
    readonly key: string,
    readonly dtype: TorchDtype,
    readonly numel: number,
    readonly location: string,
    /** The checkpoint file, for error messages. */
    readonly file: string,
    private readonly load: () => Uint8Array,
  ) {}

  /** The raw elements: half and bfloat16 as their 16-bit patterns. */
  elements(): StorageElements {
    if (!this.#elements) this.#elements = decodeStorage(this.load(), this.dtype, this.numel);
    return this.#elements;
  }
}

/**
 * A tensor of a torch checkpoint. `data` is decoded on first use: its elements in row-major order after applying
 * the storage offset and strides (so non-contiguous views come out right), floats widened to Float32Array.
 */
export class TorchTensor implements PickleOpaque {
  readonly pyType = 'torch.Tensor';
  #data: TensorData | undefined;
  constructor(
    readonly storage: TorchStorage,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly strides: number[],
    readonly requiresGrad: boolean,
  ) {}

  /** The element type of the stored data. */
  get dtype(): TorchDtype {
    return this.storage.dtype;
  }

  /** The number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** The elements, contiguous and row-major. */
  get data(): TensorData {
    if (!this.#data) {
      const elements = this.storage.elements();
      try {
        this.#data = gather(elements, this.dtype, this.shape, this.strides, this.storageOffset);
      } catch (err) {
        throw new WeightsError(`${this.storage.file}: cannot decode a [${this.shape.join(', ')}] ${this.dtype} tensor of storage ${this.storage.key}: ${(err as Error).message}`, { cause: err });
      }
    }
    return this.#data;
  }
}

/** Whether a pickled value is a tensor of a torch checkpoint. */
export function isTorchTensor(v: unknown): v is TorchTensor {
  return v instanceof TorchTensor;
}

/** The `torch.nn.modules` classes a checkpoint may instantiate, each rebuilt as an inert record. */
export const TORCH_MODULE_CLASSES: readonly string[] = [
  'torch.nn.modules.conv.Conv2d',
  'torch.nn.modules.conv.ConvTranspose2d',
  'torch.nn.modules.batchnorm.BatchNorm2d',
  'torch.nn.modules.activation.SiLU',
  'torch.nn.modules.activation.ReLU',
  'torch.nn.modules.activation.LeakyReLU',
  'torch.nn.modules.activation.Hardswish',
  'torch.nn.modules.activation.Sigmoid',
  // Other activations a model yaml may name (`activation: nn.ReLU6()`): read, so the refusal names them.
  'torch.nn.modules.activation.ReLU6',
  'torch.nn.modules.activation.GELU',
  'torch.nn.modules.activation.Mish',
  'torch.nn.modules.activation.ELU',
  'torch.nn.modules.activation.PReLU',
  'torch.nn.modules.activation.Tanh',
  'torch.nn.modules.padding.ZeroPad2d',
  'torch.nn.modules.activation.MultiheadAttention',
  'torch.nn.modules.container.Sequential',
  'torch.nn.modules.container.ModuleList',
  'torch.nn.modules.container.ModuleDict',
  'torch.nn.modules.upsampling.Upsample',
  'torch.nn.modules.pooling.MaxPool2d',
  'torch.nn.modules.pooling.AdaptiveAvgPool2d',
  'torch.nn.modules.linear.Linear',
  'torch.nn.modules.linear.Identity',
  'torch.nn.modules.linear.NonDynamicallyQuantizableLinear',
  'torch.nn.modules.dropout.Dropout',
  'torch.nn.modules.flatten.Flatten',
];

/** The ultralytics YOLOv5 (v6.x, v7.0) classes a checkpoint may instantiate, each rebuilt as an inert record. */
export const YOLOV5_CLASSES: readonly string[] = [
  ...['BaseModel', 'DetectionModel', 'Model', 'SegmentationModel', 'ClassificationModel', 'Detect', 'Segment'].map((c) => `models.yolo.${c}`),
  ...[
    'Conv', 'DWConv', 'DWConvTranspose2d', 'TransformerLayer', 'TransformerBlock', 'Bottleneck', 'BottleneckCSP', 'CrossConv',
    'C3', 'C3x', 'C3TR', 'C3SPP', 'C3Ghost', 'SPP', 'SPPF', 'Focus', 'GhostConv', 'GhostBottleneck', 'Contract', 'Expand',
    'Concat', 'Proto', 'Classify',
  ].map((c) => `models.common.${c}`),
  ...['CrossConv', 'Sum', 'MixConv2d', 'Ensemble'].map((c) => `models.experimental.${c}`),
  'argparse.Namespace',
  // classify/train.py attaches the inference transforms to a classification model (`model.transforms`).
  ...['CenterCrop', 'ToTensor', 'LetterBox'].map((c) => `utils.augmentations.${c}`),
  ...['Compose', 'Normalize', 'ToTensor', 'Resize', 'CenterCrop'].map((c) => `torchvision.transforms.transforms.${c}`),
  'torchvision.transforms.functional.InterpolationMode',
];

/** Options of {@link readTorchCheckpoint}. */
export interface TorchCheckpointOptions {
  /** Classes to rebuild as records instead of {@link TORCH_MODULE_CLASSES} + {@link YOLOV5_CLASSES}. */
  classes?: Iterable<string>;
}

/**
 * The unpickled contents of a `torch.save` file (zip format, torch ≥ 1.6), tensors resolved to {@link TorchTensor}.
 * Module objects come back as {@link PickleObject} records; nothing in the file is executed.
 * @example
 * const ckpt = await readTorchCheckpoint('runs/train/exp/weights/best.pt');
 * if (ckpt instanceof Map) console.log([...ckpt.keys()]);
 */
export async function readTorchCheckpoint(file: string, options: TorchCheckpointOptions = {}): Promise<PickleValue> {
  return parseTorchCheckpoint(await readWeightsFile(file), file, options);
}

/** {@link readTorchCheckpoint} on bytes already in memory; `file` names them in errors. */
export function parseTorchCheckpoint(bytes: Uint8Array, file: string, options: TorchCheckpointOptions = {}): PickleValue {
  // torch's legacy (pre-1.6, or _use_new_zipfile_serialization=False) format starts with a pickled magic number.
  if (bytes[0] === 0x80 && bytes[1] !== undefined && bytes[1] <= 5) {
    throw new WeightsError(`${file}: legacy torch.save format (torch < 1.6 or _use_new_zipfile_serialization=False) is not supported; re-save it with a newer torch`);
  }
  const zip = new ZipReader(bytes, file);
  const names = zip.names();
  const pkl = names.find((n) => /^[^/]+\/data\.pkl$/.test(n)) ?? names.find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (!pkl) {
    if (names.some((n) => n.endsWith('constants.pkl'))) throw new WeightsError(`${file}: a TorchScript archive (torch.jit.save), not a torch.save checkpoint`);
    throw new WeightsError(`${file}: no data.pkl in the zip, so not a torch.save checkpoint`);
  }
  const root = pkl.slice(0, pkl.length - 'data.pkl'.length);
  // torch ≥ 2.1 records the byte order of storages; older versions always wrote little-endian.
  let bigEndian = false;
  if (zip.has(`${root}byteorder`)) {
    const order = new TextDecoder().decode(zip.read(`${root}byteorder`)).trim();
    if (order !== 'little' && order !== 'big') throw new WeightsError(`${file}: unknown byte order ${JSON.stringify(order)}`);
    bigEndian = order === 'big';
  }
  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: PickleValue): PickleValue => {
    // torch/serialization.py _save: ('storage', storage_type, key, location, numel)
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw new TypeError(`unsupported persistent id ${describeValue(pid)}`);
    const [, type, key, location, numel] = pid;
    if (!(type instanceof PickleGlobal) || !(type.name in STORAGE_DTYPES)) throw new TypeError(`unknown storage type ${describeValue(type)}`);
    if (typeof key !== 'string' || !/^[\w.-]+$/.test(key)) throw new TypeError(`bad storage key ${describeValue(key)}`);
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) throw new TypeError(`bad storage size ${describeValue(numel)}`);
    const known = storages.get(key);
    if (known) return known;
    const dtype = STORAGE_DTYPES[type.name]!;
    const member = `${root}data/${key}`;
    const entry = zip.entry(member);
    if (!entry) throw new WeightsError(`${file}: storage ${key} is missing (no ${member} in the zip)`);
    if (entry.uncompressedSize < numel * ITEM_SIZE[dtype]) {
      throw new WeightsError(`${file}: storage ${key} has ${entry.uncompressedSize} bytes, ${numel} × ${dtype} needs ${numel * ITEM_SIZE[dtype]}`);
    }
    const storage = new TorchStorage(key, dtype, numel, typeof location === 'string' ? location : 'cpu', file, () => {
      const raw = zip.read(member);
      return bigEndian ? swapBytes(raw, ITEM_SIZE[dtype]) : raw;
    });
    storages.set(key, storage);
    return storage;
  };
  const classes = options.classes ?? [...TORCH_MODULE_CLASSES, ...YOLOV5_CLASSES];
  return readPickle(zip.read(pkl), { source: `${file}:${pkl}`, globals: TORCH_GLOBALS, classes, persistentLoad });
}

async function readWeightsFile(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new WeightsError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
}

// --- globals a torch checkpoint may name ---

function rebuildTensor(args: PickleValue[]): TorchTensor {
  const [storage, offset, size, stride, requiresGrad] = args;
  if (!(storage instanceof TorchStorage)) throw new TypeError(`expected a storage, got ${describeValue(storage)}`);
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw new TypeError(`bad storage offset ${describeValue(offset)}`);
  const shape = intList(size, 'size');
  const strides = intList(stride, 'stride');
  if (shape.length !== strides.length) throw new TypeError(`size has ${shape.length} dims, stride ${strides.length}`);
  let n = 1;
  let last = offset;
  for (let d = 0; d < shape.length; d++) {
    n *= shape[d]!;
    last += (shape[d]! - 1) * strides[d]!;
  }
  if (n > MAX_TENSOR_ELEMENTS) throw new TypeError(`tensor of ${n} elements is too large`);
  if (n > 0 && last >= storage.numel) {
    throw new TypeError(`tensor [${shape.join(', ')}] at offset ${offset} with strides [${strides.join(', ')}] overruns storage ${storage.key} of ${storage.numel} elements`);
  }
  return new TorchTensor(storage, offset, shape, strides, requiresGrad === true);
}

function intList(v: PickleValue | undefined, what: string): number[] {
  if (!Array.isArray(v) || v.length > 32) throw new TypeError(`bad tensor ${what} ${describeValue(v)}`);
  return v.map((x) => {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw new TypeError(`bad tensor ${what} entry ${describeValue(x)}`);
    return x;
  });
}

// (data, requires_grad, backward_hooks[, state]): an nn.Parameter is its data tensor plus the requires_grad flag.
function parameterData(args: PickleValue[]): PickleValue {
  const [t, requiresGrad] = args;
  if (!(t instanceof TorchTensor)) throw new TypeError(`expected a tensor, got ${describeValue(t)}`);
  return new TorchTensor(t.storage, t.storageOffset, t.shape, t.strides, requiresGrad === true);
}

function joinPath(sep: string) {
  return (args: PickleValue[]): PickleValue =>
    args.reduce<string>((acc, part) => {
      if (typeof part !== 'string') throw new TypeError(`path part is ${describeValue(part)}`);
      return acc === '' ? part : acc.endsWith(sep) ? acc + part : acc + sep + part;
    }, '');
}

// numpy scalars (numpy.float64 in 'best_fitness', hyperparameters after --evolve): dtype code + raw bytes.
function numpyScalar(args: PickleValue[]): PickleValue {
  const [dtype, raw] = args;
  if (!(dtype instanceof PickleObject) || dtype.className !== 'numpy.dtype' || !(raw instanceof Uint8Array)) return new PickleObject('numpy.scalar', args);
  const code = dtype.args[0];
  const state = dtype.state;
  const little = !(Array.isArray(state) && state[1] === '>');
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const need: Record<string, number> = { f8: 8, f4: 4, f2: 2, i8: 8, u8: 8, i4: 4, u4: 4, i2: 2, u2: 2, i1: 1, u1: 1, b1: 1 };
  if (typeof code !== 'string' || need[code] === undefined || raw.length < need[code]!) return new PickleObject('numpy.scalar', args);
  switch (code) {
    case 'f8': return v.getFloat64(0, little);
    case 'f4': return v.getFloat32(0, little);
    case 'f2': return halfTable()[v.getUint16(0, little)]!;
    case 'i8': return safeNumber(v.getBigInt64(0, little));
    case 'u8': return safeNumber(v.getBigUint64(0, little));
    case 'i4': return v.getInt32(0, little);
    case 'u4': return v.getUint32(0, little);
    case 'i2': return v.getInt16(0, little);
    case 'u2': return v.getUint16(0, little);
    case 'i1': return v.getInt8(0);
    case 'u1': return v.getUint8(0);
    default: return v.getUint8(0) !== 0;
  }
}

function safeNumber(v: bigint): number | bigint {
  return Number.isSafeInteger(Number(v)) ? Number(v) : v;
}

const TORCH_GLOBALS: ReadonlyMap<string, GlobalHandler> = (() => {
  const g = new Map<string, GlobalHandler>();
  g.set('torch._utils._rebuild_tensor_v2', { call: rebuildTensor });
  g.set('torch._utils._rebuild_tensor', { call: rebuildTensor });
  g.set('torch._utils._rebuild_parameter', { call: parameterData });
  g.set('torch._utils._rebuild_parameter_with_state', { call: parameterData });
  g.set('torch._tensor._rebuild_from_type_v2', {
    // (func, new_type, args, state): a Tensor subclass or a tensor with attributes; the data is what func rebuilds.
    call: (args) => {
      const [fn, , inner] = args;
      if (!(fn instanceof PickleGlobal) || !fn.handler.call || !Array.isArray(inner)) throw new TypeError('bad _rebuild_from_type_v2 arguments');
      return fn.handler.call(inner, fn);
    },
  });
  for (const s of Object.keys(STORAGE_DTYPES)) {
    for (const m of ['torch', 'torch.storage', 'torch.cuda']) g.set(`${m}.${s}`, VALUE_ONLY);
  }
  for (const t of ['float16', 'half', 'bfloat16', 'float32', 'float', 'float64', 'double', 'int64', 'long', 'int32', 'int', 'int16', 'int8', 'uint8', 'bool']) {
    g.set(`torch.${t}`, VALUE_ONLY);
  }
  g.set('torch.Tensor', VALUE_ONLY);
  g.set('torch.nn.parameter.Parameter', VALUE_ONLY);
  g.set('torch.device', {
    call: (args) => {
      const [type, index] = args;
      if (typeof type !== 'string') throw new TypeError(`device type is ${describeValue(type)}`);
      return typeof index === 'number' ? `${type}:${index}` : type;
    },
  });
  g.set('torch.Size', { call: (args) => (Array.isArray(args[0]) ? [...args[0]] : []) });
  // Protocol 2 pickles a function attribute such as ultralytics' `Segment.detect = Detect.forward` as
  // getattr(Detect, 'forward'). Only an attribute name of an allowed class, and the result is a value that
  // cannot be called.
  g.set('builtins.getattr', {
    call: (args) => {
      const [owner, attr] = args;
      if (!(owner instanceof PickleGlobal) || owner.handler.isClass !== true || typeof attr !== 'string' || !/^\w+$/.test(attr)) {
        throw new TypeError(`getattr(${describeValue(owner)}, ${describeValue(attr)}) is refused: only a named attribute of an allowed class is read`);
      }
      return new PickleGlobal(owner.module, `${owner.name}.${attr}`, VALUE_ONLY);
    },
  });
  for (const p of ['Path', 'PosixPath', 'PurePath', 'PurePosixPath']) g.set(`pathlib.${p}`, { call: joinPath('/') });
  for (const p of ['WindowsPath', 'PureWindowsPath']) g.set(`pathlib.${p}`, { call: joinPath('\\') });
  for (const np of ['numpy.core.multiarray', 'numpy._core.multiarray']) {
    g.set(`${np}.scalar`, { call: numpyScalar });
    // ndarrays stay inert records: BUILD gives them (version, shape, dtype, is_fortran, raw bytes).
    g.set(`${np}._reconstruct`, { call: () => new PickleObject('numpy.ndarray') });
  }
  g.set('numpy.ndarray', VALUE_ONLY);
  g.set('numpy.dtype', recordClass());
  return g;
})();

// --- storage decoding ---

let HALF: Float32Array | undefined;
function halfTable(): Float32Array {
  if (!HALF) {
    HALF = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const f = h & 0x3ff;
      HALF[h] = e === 0 ? sign * f * 2 ** -24 : e === 31 ? (f ? NaN : sign * Infinity) : sign * (1 + f / 1024) * 2 ** (e - 15);
    }
  }
  return HALF;
}

function swapBytes(raw: Uint8Array, size: number): Uint8Array {
  if (size === 1) return raw;
  const out = new Uint8Array(raw.length);
  for (let i = 0; i + size <= raw.length; i += size) for (let j = 0; j < size; j++) out[i + j] = raw[i + size - 1 - j]!;
  return out;
}

function decodeStorage(raw: Uint8Array, dtype: TorchDtype, numel: number): StorageElements {
  const size = ITEM_SIZE[dtype];
  // Typed-array views need aligned offsets; torch aligns members to 64 bytes, but DEFLATE or a pooled Buffer may not.
  const bytes = raw.byteOffset % size === 0 ? raw : new Uint8Array(raw);
  const { buffer, byteOffset } = bytes;
  switch (dtype) {
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(buffer, byteOffset, numel);
    case 'float32':
      return new Float32Array(buffer, byteOffset, numel);
    case 'float64':
      return new Float64Array(buffer, byteOffset, numel);
    case 'int64':
      return new BigInt64Array(buffer, byteOffset, numel);
    case 'int32':
      return new Int32Array(buffer, byteOffset, numel);
    case 'int16':
      return new Int16Array(buffer, byteOffset, numel);
    case 'int8':
      return new Int8Array(buffer, byteOffset, numel);
    default:
      return new Uint8Array(buffer, byteOffset, numel);
  }
}

/** Storage indices of a strided view in row-major order, or null when the view is contiguous. */
function stridedIndices(shape: number[], strides: number[], offset: number, n: number): Float64Array | null {
  let expect = 1;
  let contiguous = true;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d]! !== 1 && strides[d] !== expect) contiguous = false;
    expect *= shape[d]!;
  }
  if (contiguous) return null;
  const idx = new Float64Array(n);
  const nd = shape.length;
  const counter = new Array<number>(nd).fill(0);
  let p = offset;
  for (let i = 0; i < n; i++) {
    idx[i] = p;
    for (let d = nd - 1; d >= 0; d--) {
      p += strides[d]!;
      if (++counter[d]! < shape[d]!) break;
      p -= strides[d]! * shape[d]!;
      counter[d] = 0;
    }
  }
  return idx;
}

function gather(src: StorageElements, dtype: TorchDtype, shape: number[], strides: number[], offset: number): TensorData {
  const n = shape.reduce((a, b) => a * b, 1);
  const idx = stridedIndices(shape, strides, offset, n);
  if (dtype === 'float16') {
    const table = halfTable();
    const s = src as Uint16Array;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = table[s[idx ? idx[i]! : offset + i]!]!;
    return out;
  }
  if (dtype === 'bfloat16') {
    // bfloat16 is the top half of a float32.
    const s = src as Uint16Array;
    const out = new Float32Array(n);
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = s[idx ? idx[i]! : offset + i]! << 16;
    return out;
  }
  if (!idx) {
    const view = src.subarray(offset, offset + n);
    if (dtype === 'float64') return Float32Array.from(view as Float64Array);
    return (view as TensorData).slice();
  }
  if (dtype === 'int64') {
    const s = src as BigInt64Array;
    const out = new BigInt64Array(n);
    for (let i = 0; i < n; i++) out[i] = s[idx[i]!]!;
    return out;
  }
  const s = src as Exclude<StorageElements, BigInt64Array>;
  const out: Exclude<TensorData, BigInt64Array> =
    dtype === 'float32' || dtype === 'float64' ? new Float32Array(n)
    : dtype === 'int32' ? new Int32Array(n)
    : dtype === 'int16' ? new Int16Array(n)
    : dtype === 'int8' ? new Int8Array(n)
    : new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = s[idx[i]!]!;
  return out;
}

// --- ultralytics YOLOv5 ---

/** One entry of a state dict, widened to float32 whatever its stored dtype. */
export interface StateDictEntry {
  shape: number[];
  data: Float32Array;
  /** The dtype in the file (`float16` for a released checkpoint, `int64` for `num_batches_tracked`). */
  dtype: TorchDtype;
}

/** What {@link readUltralyticsCheckpoint} finds in an ultralytics YOLOv5 `.pt`. */
export interface UltralyticsCheckpoint {
  /** Which entry the weights came from: ultralytics loads `ckpt.get('ema') or ckpt['model']`. */
  entry: 'ema' | 'model';
  /** The model's class: `models.yolo.DetectionModel` (v7.0) or `models.yolo.Model` (v6.x). */
  className: string;
  /** PyTorch's `model.state_dict()`: the same names in the same order. */
  stateDict: Map<string, StateDictEntry>;
  /** The model YAML as parsed by ultralytics (`model.yaml`), or null when the checkpoint has none. */
  yaml: Record<string, unknown> | null;
  /** Class names by index (a v7.0 `{0: 'person', …}` dict becomes a list). */
  names: string[];
  /** Number of classes. */
  nc: number;
  /** Stride of each detection level in pixels, e.g. [8, 16, 32]. */
  stride: number[];
  /** Anchors of each level in pixels, flattened [w0, h0, w1, h1, …]. */
  anchorsPx: number[][];
  /** The training epoch (-1 once ultralytics' strip_optimizer ran), or null. */
  epoch: number | null;
  /** When the checkpoint was written (ISO 8601), or null. */
  date: string | null;
  /** The dtype of the weights (of the first parameter). */
  dtype: TorchDtype;
  /** Every submodule's class, with the paths where it occurs (`model.0.act`), in module order. */
  modules: Map<string, string[]>;
}

/** YOLOv5 detection model classes: `DetectionModel` since v7.0, `Model` in v6.x (and an alias of it in v7.0). */
export const YOLOV5_DETECTION_MODELS: readonly string[] = ['models.yolo.DetectionModel', 'models.yolo.Model'];

// What other model classes a user may bring are, for the refusal message.
const OTHER_MODELS: Readonly<Record<string, string>> = {
  'models.yolo.SegmentationModel': 'a YOLOv5 instance-segmentation model (segment/train.py)',
  'models.yolo.ClassificationModel': 'a YOLOv5 image-classification model (classify/train.py)',
};

const MAX_MODULE_DEPTH = 64;
// yolov5x6 has ~1,500 submodules. A pickle may reference one module record from many parents, so a walk over
// paths (not objects) is bounded by count as well as by depth: a shared-child chain would otherwise be 2^depth.
const MAX_MODULE_VISITS = 200_000;

/**
 * Reads an ultralytics YOLOv5 checkpoint (v6.x, v7.0) without Python: the weights as PyTorch's `state_dict()`,
 * plus the YAML, class names, strides and anchors that a detector needs.
 * @example
 * const ckpt = await readUltralyticsCheckpoint('yolov5n.pt');
 * ckpt.stateDict.get('model.0.conv.weight')?.shape; // [16, 3, 6, 6]
 */
export async function readUltralyticsCheckpoint(file: string): Promise<UltralyticsCheckpoint> {
  return parseUltralyticsCheckpoint(await readWeightsFile(file), file);
}

/** {@link readUltralyticsCheckpoint} on bytes already in memory; `file` names them in errors. */
export function parseUltralyticsCheckpoint(bytes: Uint8Array, file: string): UltralyticsCheckpoint {
  let ckpt: PickleValue;
  try {
    ckpt = parseTorchCheckpoint(bytes, file);
  } catch (err) {
    // The `ultralytics` pip package (YOLOv8, YOLO11, YOLOv5u) pickles its own classes; say what the file is.
    const global = err instanceof WeightsError ? /refusing pickle global (ultralytics\.[\w.]+)/.exec(err.message)?.[1] : undefined;
    if (global === undefined) throw err;
    throw new WeightsError(
      `${err instanceof Error ? err.message : String(err)}: a checkpoint of the 'ultralytics' package (YOLOv8/YOLO11/YOLOv5u, class ${global}), ` +
        'not of ultralytics/yolov5; kd-trainer reads YOLOv5 v6.0+ detection checkpoints',
      { cause: err },
    );
  }
  if (!(ckpt instanceof Map)) {
    throw new WeightsError(`${file}: holds ${describeValue(ckpt)}, not an ultralytics checkpoint dict with a 'model' entry`);
  }
  const ema = ckpt.get('ema');
  const entry = ema instanceof PickleObject ? 'ema' : 'model';
  const model = ckpt.get(entry);
  if (!(model instanceof PickleObject)) {
    const keys = [...ckpt.keys()].map((k) => JSON.stringify(k)).join(', ');
    throw new WeightsError(`${file}: no 'model' or 'ema' module in the checkpoint (keys: ${keys})`);
  }
  if (!YOLOV5_DETECTION_MODELS.includes(model.className)) {
    const what = OTHER_MODELS[model.className];
    throw new WeightsError(
      `${file}: '${entry}' is a ${model.className}${what ? `, ${what}` : ''}, not a YOLOv5 detection model (${YOLOV5_DETECTION_MODELS.join(' or ')})` +
        (what ? '; kd-trainer trains and distils detectors only' : ''),
    );
  }
  const where = `${file}: '${entry}'`;
  const tensors = moduleStateDict(model, where);
  const stateDict = new Map<string, StateDictEntry>();
  let dtype: TorchDtype | undefined;
  for (const [name, t] of tensors) {
    stateDict.set(name, { shape: [...t.shape], data: toFloat32(t.data), dtype: t.dtype });
    if (!dtype && isFloatDtype(t.dtype)) dtype = t.dtype;
  }
  if (!dtype) throw new WeightsError(`${where} has no floating-point weights`);

  const attrs = moduleDict(model, where);
  const yamlValue = attrs.get('yaml');
  const yaml = yamlValue instanceof Map ? (toPlain(yamlValue, where, 0) as Record<string, unknown>) : null;

  const layers = moduleDict(model, where).get('_modules');
  const seq = layers instanceof Map ? layers.get('model') : undefined;
  const seqModules = seq instanceof PickleObject ? moduleDict(seq, where).get('_modules') : undefined;
  const head = seqModules instanceof Map ? [...seqModules.values()].at(-1) : undefined;
  if (!(head instanceof PickleObject)) throw new WeightsError(`${where} has no layer list (model.model) to find its Detect head in`);
  const headAttrs = moduleDict(head, where);
  const anchors = (headAttrs.get('_buffers') as Map<PickleValue, PickleValue> | undefined)?.get('anchors');
  if (!(anchors instanceof TorchTensor) || anchors.shape.length !== 3 || anchors.shape[2] !== 2) {
    throw new WeightsError(`${where}: the last layer is a ${head.className} without an anchors buffer of shape [nl, na, 2], not a YOLOv5 Detect head`);
  }
  const strideTensor = attrs.get('stride') ?? headAttrs.get('stride');
  if (!(strideTensor instanceof TorchTensor)) throw new WeightsError(`${where} has no stride tensor`);
  const stride = Array.from(toFloat32(strideTensor.data));
  const [nl, na] = anchors.shape as [number, number, number];
  if (stride.length !== nl) throw new WeightsError(`${where} has ${stride.length} strides for ${nl} detection levels`);
  const a = toFloat32(anchors.data);
  const anchorsPx = stride.map((s, l) => Array.from(a.subarray(l * na * 2, (l + 1) * na * 2), (v) => v * s));

  const ncValue = attrs.get('nc') ?? (yaml?.nc as PickleValue | undefined) ?? headAttrs.get('nc');
  if (typeof ncValue !== 'number' || !Number.isInteger(ncValue) || ncValue < 1) throw new WeightsError(`${where} has no class count (nc)`);
  const names = classNames(attrs.get('names'), ncValue, where);
  const epoch = ckpt.get('epoch');
  const date = ckpt.get('date');
  return {
    entry,
    className: model.className,
    stateDict,
    yaml,
    names,
    nc: ncValue,
    stride,
    anchorsPx,
    epoch: typeof epoch === 'number' ? epoch : null,
    date: typeof date === 'string' ? date : null,
    dtype,
    modules: moduleClasses(model, where),
  };
}

/** The classes of a module record's submodules (not the root), each with the paths where it occurs, depth-first. */
export function moduleClasses(module: PickleObject, where = 'module'): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let visits = 0;
  const visit = (m: PickleObject, prefix: string, depth: number): void => {
    if (depth > MAX_MODULE_DEPTH) throw new WeightsError(`${where}: modules nest deeper than ${MAX_MODULE_DEPTH} levels`);
    if (++visits > MAX_MODULE_VISITS) throw new WeightsError(`${where}: more than ${MAX_MODULE_VISITS} submodules`);
    const children = moduleDict(m, where).get('_modules');
    if (!(children instanceof Map)) return;
    for (const [name, child] of children) {
      if (!(child instanceof PickleObject)) continue;
      const path = `${prefix}${String(name)}`;
      const paths = out.get(child.className);
      if (paths) paths.push(path);
      else out.set(child.className, [path]);
      visit(child, `${path}.`, depth + 1);
    }
  };
  visit(module, '', 0);
  return out;
}

/**
 * The tensors of an `nn.Module` record as PyTorch's `state_dict()` names and orders them: each module's
 * `_parameters`, then its persistent `_buffers`, then its `_modules` depth-first (torch/nn/modules/module.py).
 */
export function moduleStateDict(module: PickleObject, where = 'module'): Map<string, TorchTensor> {
  const out = new Map<string, TorchTensor>();
  let visits = 0;
  const visit = (m: PickleObject, prefix: string, depth: number): void => {
    if (depth > MAX_MODULE_DEPTH) throw new WeightsError(`${where}: modules nest deeper than ${MAX_MODULE_DEPTH} levels`);
    if (++visits > MAX_MODULE_VISITS) throw new WeightsError(`${where}: more than ${MAX_MODULE_VISITS} submodules`);
    const d = moduleDict(m, where);
    const nonPersistent = d.get('_non_persistent_buffers_set');
    for (const field of ['_parameters', '_buffers'] as const) {
      const items = d.get(field);
      if (items === undefined || items === null) continue;
      if (!(items instanceof Map)) throw new WeightsError(`${where}: ${prefix || 'the model'} has ${field} of ${describeValue(items)}`);
      for (const [name, t] of items) {
        if (t === null) continue;
        if (typeof name !== 'string' || !(t instanceof TorchTensor)) {
          throw new WeightsError(`${where}: ${prefix}${String(name)} in ${field} is ${describeValue(t)}, not a tensor`);
        }
        if (field === '_buffers' && nonPersistent instanceof Set && nonPersistent.has(name)) continue;
        out.set(prefix + name, t);
      }
    }
    const children = d.get('_modules');
    if (children instanceof Map) {
      for (const [name, child] of children) {
        if (child === null) continue;
        if (!(child instanceof PickleObject)) throw new WeightsError(`${where}: submodule ${prefix}${String(name)} is ${describeValue(child)}`);
        visit(child, `${prefix}${String(name)}.`, depth + 1);
      }
    }
  };
  visit(module, '', 0);
  return out;
}

function moduleDict(m: PickleObject, where: string): Map<PickleValue, PickleValue> {
  if (!(m.state instanceof Map)) throw new WeightsError(`${where}: the ${m.className} has no attribute dict (state is ${describeValue(m.state)})`);
  return m.state;
}

function toFloat32(data: TensorData): Float32Array {
  if (data instanceof Float32Array) return data;
  if (data instanceof BigInt64Array) return Float32Array.from(data, (v) => Number(v));
  return Float32Array.from(data);
}

// ultralytics keeps names as a list (v6.x) or, since v7.0, possibly a dict {0: 'person', …}.
function classNames(v: PickleValue | undefined, nc: number, where: string): string[] {
  if (Array.isArray(v)) return v.map((n) => String(n));
  if (v instanceof Map) {
    const names: string[] = [];
    for (const [k, n] of v) {
      const i = typeof k === 'number' ? k : Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= 100_000) throw new WeightsError(`${where}: class names dict has key ${String(k)}`);
      names[i] = String(n);
    }
    return Array.from(names, (n, i) => n ?? `class${i}`);
  }
  return Array.from({ length: nc }, (_, i) => `class${i}`);
}

/** A pickled value as plain JSON-like data: dicts to objects, sets and tuples to arrays, globals to their names. */
function toPlain(v: PickleValue, where: string, depth: number): unknown {
  if (depth > MAX_MODULE_DEPTH) throw new WeightsError(`${where}: the model YAML nests deeper than ${MAX_MODULE_DEPTH} levels`);
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    // defineProperty, so a '__proto__' key stays a key.
    for (const [k, x] of v) Object.defineProperty(o, String(k), { value: toPlain(x, where, depth + 1), enumerable: true, writable: true, configurable: true });
    return o;
  }
  if (Array.isArray(v) || v instanceof Set) return [...v].map((x) => toPlain(x, where, depth + 1));
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof PickleGlobal) return v.fullName;
  if (v instanceof PickleObject) return { className: v.className, state: toPlain(v.state, where, depth + 1) };
  return v;
}
