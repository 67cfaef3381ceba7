import { readFile } from 'node:fs/promises';
import { decodeModel, type DecodeOptions } from './decode.js';
import { encodeModel } from './encode.js';
import { writeFileDurable } from '../util/durable-write.js';
import { OnnxError } from './onnx-error.js';
import { externalDataLocation, hasExternalData } from './tensor.js';
import type { ModelProto } from './types.js';
import { walkModel } from './walk.js';

/** Options of {@link readOnnxFile}. */
export interface ReadOnnxOptions extends DecodeOptions {
  /**
   * Return models whose tensors live in external files instead of failing (default false). Their
   * protos read fine, but {@link tensorValues} fails on those tensors.
   */
  allowExternalData?: boolean;
}

/** A tensor stored outside the .onnx file, as {@link findExternalData} reports it. */
export interface ExternalDataRef {
  /** Tensor name. */
  name: string;
  /** Where the tensor sits in the model, e.g. `graph.initializer[3]`. */
  path: string;
  /** The file it points to (the `location` entry). */
  location: string;
}

/** Every tensor of the model (subgraphs included) whose data lives in an external file. */
export function findExternalData(model: ModelProto): ExternalDataRef[] {
  const found: ExternalDataRef[] = [];
  walkModel(model, {
    tensor(t, path) {
      if (hasExternalData(t)) found.push({ name: t.name, path, location: externalDataLocation(t) });
    },
  });
  return found;
}

// Leading bytes of files people mistake for ONNX models.
const SIGNATURES: readonly (readonly [string, string])[] = [
  ['PK\u0003\u0004', 'a zip archive (a PyTorch .pt checkpoint?)'],
  ['\u0089HDF', 'an HDF5 file (a Keras .h5 model?)'],
  ['{', 'a JSON file'],
];

function sniff(bytes: Uint8Array): string | undefined {
  const head = String.fromCharCode(...bytes.subarray(0, 4));
  for (const [magic, what] of SIGNATURES) if (head.startsWith(magic)) return what;
  if (bytes.length >= 8 && String.fromCharCode(...bytes.subarray(4, 8)) === 'TFL3') return 'a TensorFlow Lite model';
  return undefined;
}

/**
 * Reads and decodes an .onnx file. Fails with OnnxError: 'ONNX_FILE_NOT_FOUND', 'ONNX_FILE_EMPTY',
 * 'ONNX_READ_FAILED', 'ONNX_MALFORMED' / 'ONNX_TOO_DEEP' (bad protobuf, with the field path),
 * 'ONNX_NOT_ONNX' (decodes, but has neither an IR version nor a graph), 'ONNX_NO_GRAPH', and
 * 'ONNX_EXTERNAL_DATA' (weights in external files, listing the tensors; not supported).
 * @example const model = await readOnnxFile('runs/exp/weights/best.onnx');
 */
export async function readOnnxFile(path: string, options?: ReadOnnxOptions): Promise<ModelProto> {
  if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string');
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OnnxError('ONNX_FILE_NOT_FOUND', `ONNX file not found: ${path}`, { cause: e });
    throw new OnnxError('ONNX_READ_FAILED', `cannot read ONNX file ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (bytes.length === 0) throw new OnnxError('ONNX_FILE_EMPTY', `ONNX file is empty: ${path}`);
  const looksLike = sniff(bytes);
  let model: ModelProto;
  try {
    model = decodeModel(bytes, options);
  } catch (e) {
    if (!(e instanceof OnnxError)) throw e;
    const hint = looksLike ? ` (the file looks like ${looksLike})` : '';
    throw new OnnxError(e.code, `${path}: ${e.message}${hint}`, { cause: e, path: e.path, offset: e.offset });
  }
  if (model.graph === undefined) {
    if (model.irVersion === 0) {
      const what = looksLike ? `it looks like ${looksLike}` : 'it has no IR version and no graph';
      throw new OnnxError('ONNX_NOT_ONNX', `${path} is not an ONNX model: ${what}`);
    }
    throw new OnnxError('ONNX_NO_GRAPH', `${path}: the ONNX model (IR version ${model.irVersion}) has no graph`);
  }
  if (!options?.allowExternalData) {
    const external = findExternalData(model);
    if (external.length > 0) {
      const shown = external.slice(0, 10).map((x) => `'${x.name}' → ${x.location}`);
      if (external.length > 10) shown.push(`and ${external.length - 10} more`);
      throw new OnnxError(
        'ONNX_EXTERNAL_DATA',
        `${path} keeps ${external.length} tensor(s) in external data files, which kd-edge does not support: ` +
          `${shown.join(', ')}. Save the model with its weights inside the .onnx file ` +
          '(python: onnx.save_model(model, path, save_as_external_data=False); models over 2 GiB cannot be).',
      );
    }
  }
  return model;
}

// What writeFileDurable was doing when a system call failed, for the error message.
const WRITE_STEPS: Record<string, string> = {
  open: 'creating the temporary file', write: 'writing', fchmod: 'writing', fsync: 'flushing', rename: 'renaming the temporary file',
};

/**
 * Encodes a model and writes it atomically: to a temporary file in the same folder, flushed to disk,
 * then renamed over `path`, so a failed write never leaves a partial model at `path`. Encoding
 * errors (TypeError / RangeError) are thrown before anything is written; file-system failures
 * throw OnnxError 'ONNX_WRITE_FAILED'. Returns the number of bytes written.
 * @example await writeOnnxFile('out/model.onnx', makeModel({ graph, opset: 13 }));
 */
export async function writeOnnxFile(path: string, model: ModelProto): Promise<number> {
  if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string');
  const bytes = encodeModel(model);
  try {
    await writeFileDurable(path, bytes);
  } catch (e) {
    const step = WRITE_STEPS[(e as NodeJS.ErrnoException).syscall ?? ''] ?? 'writing';
    throw new OnnxError('ONNX_WRITE_FAILED', `cannot write ONNX file ${path} (${step}): ${(e as Error).message}`, { cause: e });
  }
  return bytes.length;
}
