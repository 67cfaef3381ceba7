import { promises as fsp } from 'node:fs';
import { endianness } from 'node:os';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { writeFileDurable } from '@kd-edge/core';
import * as tf from '../tf.js';
import { WeightsError } from '../errors.js';
import { buildClassifier } from './classifier.js';
import type { ValueSource } from './state.js';
import type { ClassificationModel, DetectionModel, ModelDescription } from './types.js';
import { buildYoloModel } from './yolo.js';

/** A float32 tensor as plain data (row-major values and their shape). */
export interface StoredTensor {
  shape: number[];
  data: Float32Array;
}

/** What readTensorArchive returns: the header's meta object and the tensors by name. */
export interface TensorArchive {
  meta: Record<string, unknown>;
  tensors: Map<string, StoredTensor>;
}

/** Extra content of a weights file: free-form meta and extra tensors (EMA weights, optimizer state…). */
export interface SaveWeightsExtra {
  meta?: object;
  tensors?: Record<string, tf.Tensor | StoredTensor>;
}

/** What loadModel returns. */
export interface LoadedModel {
  model: DetectionModel | ClassificationModel;
  /** The `meta` given to saveWeights ({} when none). */
  meta: Record<string, unknown>;
  /** The extra tensors given to saveWeights, by the same names. */
  extraTensors: Record<string, StoredTensor>;
}

/** File magic of the kd-edge tensor archive. */
export const KDW_MAGIC = 'KDW1';
const FORMAT_VERSION = 1;
const ALIGN = 8;
const LITTLE_ENDIAN = endianness() === 'LE';

interface HeaderEntry {
  name: string;
  dtype: 'float32';
  shape: number[];
  /** Byte offset from the start of the payload. */
  offset: number;
  /** Byte length. */
  length: number;
}

interface Header {
  format: typeof KDW_MAGIC;
  version: number;
  meta: Record<string, unknown>;
  tensors: HeaderEntry[];
  payload: { length: number; crc32: number };
}

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

function leBytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) dv.setFloat32(i * 4, data[i]!, true);
  return out;
}

function fromLeBytes(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  if (LITTLE_ENDIAN) {
    // Copy so that the tensor owns aligned memory independent of the file buffer.
    new Uint8Array(out.buffer).set(bytes);
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true);
  }
  return out;
}

/**
 * Writes tensors and a JSON meta object to `file` in the KDW1 format: magic `KDW1`, uint32 LE header
 * length, JSON header (meta, per-tensor name/dtype/shape/offset/length, payload length and CRC32),
 * zero padding to 8 bytes, then the raw little-endian float32 payload. The file is written durably (core's
 * writeFileDurable: a temporary sibling, fsynced and renamed), so a crash never leaves a half-written file in its place.
 */
export async function writeTensorArchive(file: string, meta: object, tensors: Map<string, StoredTensor>): Promise<void> {
  const entries: HeaderEntry[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  let crc = 0;
  for (const [name, t] of tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (!(t.data instanceof Float32Array) || t.data.length !== size || !t.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new RangeError(`tensors: ${name} must be a Float32Array of ${size} values for shape [${t.shape.join(', ')}]`);
    }
    const pad = align(offset) - offset;
    if (pad > 0) {
      const zeros = new Uint8Array(pad);
      chunks.push(zeros);
      crc = crc32(zeros, crc);
      offset += pad;
    }
    const bytes = leBytes(t.data);
    chunks.push(bytes);
    // Node 20's zlib.crc32 returns 0 for an empty view over an empty ArrayBuffer, whatever the running value.
    if (bytes.byteLength > 0) crc = crc32(bytes, crc);
    entries.push({ name, dtype: 'float32', shape: [...t.shape], offset, length: bytes.byteLength });
    offset += bytes.byteLength;
  }
  const header: Header = {
    format: KDW_MAGIC,
    version: FORMAT_VERSION,
    meta: meta as Record<string, unknown>,
    tensors: entries,
    payload: { length: offset, crc32: crc >>> 0 },
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(align(8 + json.byteLength));
  prefix.write(KDW_MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.byteLength, 4);
  json.copy(prefix, 8);

  try {
    await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
    await writeFileDurable(file, [prefix, ...chunks]);
  } catch (err) {
    throw new WeightsError(`cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function bad(file: string, why: string, cause?: unknown): WeightsError {
  return new WeightsError(`${file}: ${why}`, cause === undefined ? undefined : { cause });
}

function parseHeader(file: string, buf: Buffer): { header: Header; payloadStart: number } {
  if (buf.byteLength < 8 || buf.toString('latin1', 0, 4) !== KDW_MAGIC) {
    throw bad(file, `not a kd-edge weights file (expected magic ${KDW_MAGIC})`);
  }
  const headerLen = buf.readUInt32LE(4);
  if (8 + headerLen > buf.byteLength) throw bad(file, `truncated: header of ${headerLen} bytes but the file has ${buf.byteLength}`);
  let header: Header;
  try {
    header = JSON.parse(buf.toString('utf8', 8, 8 + headerLen)) as Header;
  } catch (err) {
    throw bad(file, 'corrupt header (invalid JSON)', err);
  }
  if (header === null || typeof header !== 'object' || header.format !== KDW_MAGIC || !Array.isArray(header.tensors)
    || typeof header.payload?.length !== 'number' || typeof header.payload?.crc32 !== 'number') {
    throw bad(file, 'corrupt header (missing fields)');
  }
  if (header.version !== FORMAT_VERSION) throw bad(file, `unsupported format version ${String(header.version)} (this reads ${FORMAT_VERSION})`);
  return { header, payloadStart: align(8 + headerLen) };
}

/**
 * The header's meta object of a KDW1 file, reading only the header (a checkpoint's settings without its
 * tensors). Throws WeightsError like {@link readTensorArchive}; the payload is not checked.
 */
export async function readTensorArchiveMeta(file: string): Promise<Record<string, unknown>> {
  let fh;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    throw bad(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err);
  }
  try {
    const head = Buffer.alloc(8);
    const { bytesRead } = await fh.read(head, 0, 8, 0);
    const len = bytesRead === 8 && head.toString('latin1', 0, 4) === KDW_MAGIC ? head.readUInt32LE(4) : 0;
    const buf = Buffer.alloc(8 + len);
    await fh.read(buf, 0, buf.byteLength, 0);
    return parseHeader(file, buf).header.meta ?? {};
  } finally {
    await fh.close();
  }
}

/**
 * Reads a KDW1 file written by writeTensorArchive. Throws WeightsError naming the file when it is
 * missing, not KDW1, truncated, or its payload checksum does not match.
 */
export async function readTensorArchive(file: string): Promise<TensorArchive> {
  let buf: Buffer;
  try {
    buf = await fsp.readFile(file);
  } catch (err) {
    throw bad(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err);
  }
  const { header, payloadStart } = parseHeader(file, buf);
  const expected = payloadStart + header.payload.length;
  if (buf.byteLength < expected) throw bad(file, `truncated: expected ${expected} bytes, found ${buf.byteLength}`);
  if (buf.byteLength > expected) throw bad(file, `corrupt: ${buf.byteLength - expected} unexpected bytes after the payload`);
  const payload = buf.subarray(payloadStart);
  if (crc32(payload) >>> 0 !== header.payload.crc32) throw bad(file, 'corrupt: payload checksum (CRC32) mismatch');
  const tensors = new Map<string, StoredTensor>();
  for (const e of header.tensors) {
    const size = Array.isArray(e.shape) ? e.shape.reduce((a, b) => a * b, 1) : NaN;
    if (typeof e.name !== 'string' || e.dtype !== 'float32' || e.length !== size * 4 || !Number.isInteger(e.offset)
      || e.offset < 0 || e.offset + e.length > payload.byteLength || tensors.has(e.name)) {
      throw bad(file, `corrupt header entry for tensor ${JSON.stringify(e.name)}`);
    }
    tensors.set(e.name, { shape: [...e.shape], data: fromLeBytes(payload.subarray(e.offset, e.offset + e.length)) });
  }
  return { meta: header.meta ?? {}, tensors };
}

async function toStored(t: tf.Tensor | StoredTensor): Promise<StoredTensor> {
  if (t instanceof tf.Tensor) {
    const values = await t.data();
    return { shape: [...t.shape], data: values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>) };
  }
  return t;
}

const PARAM = 'params/';
const BUFFER = 'buffers/';
const EXTRA = 'extra/';

/**
 * Saves a model (description, params, BatchNorm buffers) with optional meta and extra tensors to one
 * KDW1 file, atomically. loadModel rebuilds the model from it.
 * @example await saveWeights('runs/exp/weights/last.kdw', model, { meta: { epoch: 3 } })
 */
export async function saveWeights(
  file: string,
  model: DetectionModel | ClassificationModel,
  extra: SaveWeightsExtra = {},
): Promise<void> {
  const params = new Map<string, StoredTensor>();
  const buffers = new Map<string, StoredTensor>();
  const extras = new Map<string, StoredTensor>();
  for (const [name, v] of model.params) params.set(name, await toStored(v));
  for (const [name, v] of model.buffers) buffers.set(name, await toStored(v));
  for (const [name, t] of Object.entries(extra.tensors ?? {})) extras.set(name, await toStored(t));
  await writeModelArchive(file, model.description, { params, buffers, extras }, extra.meta ?? {});
}

/**
 * Writes a model's state as plain arrays in the layout saveWeights uses (what loadModel and
 * openModelArchive read), without a TensorFlow.js model: for converters.
 */
export async function writeModelArchive(
  file: string,
  description: ModelDescription,
  state: { params: Map<string, StoredTensor>; buffers: Map<string, StoredTensor>; extras?: Map<string, StoredTensor> },
  meta: object = {},
): Promise<void> {
  const tensors = new Map<string, StoredTensor>();
  for (const [name, t] of state.params) tensors.set(PARAM + name, t);
  for (const [name, t] of state.buffers) tensors.set(BUFFER + name, t);
  for (const [name, t] of state.extras ?? []) tensors.set(EXTRA + name, t);
  await writeTensorArchive(file, { content: 'kd-edge-model', description, meta }, tensors);
}

/** A file written by saveWeights, read but not yet built: no compute backend involved. */
export interface ModelArchive {
  file: string;
  description: ModelDescription;
  /** The `meta` given to saveWeights ({} when none). */
  meta: Record<string, unknown>;
  archive: TensorArchive;
}

/** Reads a file written by saveWeights without building the model (safe before a backend is selected). */
export async function openModelArchive(file: string): Promise<ModelArchive> {
  const archive = await readTensorArchive(file);
  const m = archive.meta;
  if (m.content !== 'kd-edge-model' || m.description === null || typeof m.description !== 'object') {
    throw bad(file, 'holds no model (written by writeTensorArchive, not saveWeights)');
  }
  return { file, description: m.description as ModelDescription, meta: (m.meta ?? {}) as Record<string, unknown>, archive };
}

/** Builds the TensorFlow.js model of an opened archive on the selected backend. Throws WeightsError on any mismatch. */
export function buildFromArchive(a: ModelArchive): LoadedModel {
  const { file, archive, description: desc } = a;
  const source: ValueSource = (spec) => {
    const t = archive.tensors.get((spec.trainable ? PARAM : BUFFER) + spec.name);
    if (t === undefined) throw bad(file, `missing tensor ${spec.name}`);
    if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      throw bad(file, `tensor ${spec.name} has shape [${t.shape.join(', ')}], the model needs [${spec.shape.join(', ')}]`);
    }
    return t.data;
  };
  let model: DetectionModel | ClassificationModel;
  try {
    if (desc.type === 'yolov5') model = buildYoloModel(desc, source);
    else if (desc.type === 'classifier') model = buildClassifier(desc, source);
    else throw new RangeError(`description.type: ${JSON.stringify((desc as { type: unknown }).type)} is not yolov5 or classifier`);
  } catch (err) {
    if (err instanceof WeightsError) throw err;
    throw bad(file, `invalid model description (${(err as Error).message})`, err);
  }
  return { model, meta: a.meta, extraTensors: archiveExtras(a) };
}

/** The extra tensors given to saveWeights, by the same names. */
export function archiveExtras(a: ModelArchive): Record<string, StoredTensor> {
  const extraTensors: Record<string, StoredTensor> = {};
  for (const [name, t] of a.archive.tensors) if (name.startsWith(EXTRA)) extraTensors[name.slice(EXTRA.length)] = t;
  return extraTensors;
}

/**
 * Loads a file written by saveWeights: rebuilds the model from its stored description and fills its
 * params and buffers. Throws WeightsError naming the file on any mismatch.
 * @example const { model, meta } = await loadModel('runs/exp/weights/best.kdw')
 */
export async function loadModel(file: string): Promise<LoadedModel> {
  return buildFromArchive(await openModelArchive(file));
}

/** What loadModelWeights returns: the description, the state as plain arrays, and the meta. */
export interface LoadedWeights {
  description: ModelDescription;
  /** Params and buffers by state_dict name (no backend involved). */
  weights: Map<string, Float32Array>;
  meta: Record<string, unknown>;
}

/**
 * Reads a file written by saveWeights without building a TensorFlow.js model: what export and
 * packaging need, on machines with no compute backend set up.
 */
export async function loadModelWeights(file: string): Promise<LoadedWeights> {
  const { description, meta, archive } = await openModelArchive(file);
  const weights = new Map<string, Float32Array>();
  for (const [name, t] of archive.tensors) {
    if (name.startsWith(PARAM)) weights.set(name.slice(PARAM.length), t.data);
    else if (name.startsWith(BUFFER)) weights.set(name.slice(BUFFER.length), t.data);
  }
  return { description, weights, meta };
}
