// The kd-trt-runner protocol, version 1: length-prefixed JSON frames on the runner's stdin/stdout, tensors in a
// shared-memory file. docs/trt-runner.md is the reference; the C++ runner (native/trt-runner) implements the same
// rules, and so does the stand-in (standin-runner.ts).

/** The protocol version this agent speaks. */
export const PROTOCOL_VERSION = 1;

/** Largest frame body either side accepts (the 4-byte length prefix not counted). */
export const MAX_FRAME_BYTES = 65_536;

/** Most engines one runner holds at once (the native runner's default `--max-engines`). */
export const DEFAULT_MAX_ENGINES = 4;

/** Codes of the runner's error frames. */
export const RUNNER_ERROR_CODES = [
  'BAD_FRAME', 'BAD_REQUEST', 'UNSUPPORTED_VERSION', 'UNKNOWN_TYPE', 'NO_ENGINE', 'TOO_MANY_ENGINES', 'LOAD_FAILED',
  'SHM_INVALID', 'OUT_OF_BOUNDS', 'SHAPE_MISMATCH', 'INFER_FAILED', 'INTERNAL',
] as const;

/** One code of a runner error frame. */
export type RunnerErrorCode = (typeof RUNNER_ERROR_CODES)[number];

/** Element size in bytes of each tensor data type the protocol names. */
export const TENSOR_DTYPES = { float32: 4, float16: 2, int8: 1, uint8: 1, int32: 4, int64: 8, bool: 1 } as const;

/** A tensor data type name of the protocol. */
export type TensorDtype = keyof typeof TENSOR_DTYPES;

/** Engine keys: chosen by the agent, 1 to 64 of `[A-Za-z0-9._-]`. */
export const ENGINE_KEY_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** Names of shared-memory files inside the runner's shm directory. */
export const SHM_NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** An engine input or output as `loaded` reports it; every dim is a positive integer (v1 has static shapes only). */
export interface TensorSpec {
  name: string;
  dtype: TensorDtype;
  shape: number[];
}

/** Where one tensor lies in the shared-memory file. */
export interface TensorRegion {
  name: string;
  offset: number;
  bytes: number;
}

/** An input region of an `infer` request, with the shape the agent wrote. */
export interface InputRegion extends TensorRegion {
  shape: number[];
}

/** Requests, agent → runner. */
export type RunnerRequest =
  | { id: number; type: 'hello'; versions: number[] }
  | { id: number; type: 'load'; engine: string; path: string }
  | { id: number; type: 'unload'; engine: string }
  | { id: number; type: 'infer'; engine: string; shm: string; inputs: InputRegion[]; outputs: TensorRegion[] }
  | { id: number; type: 'shutdown' };

/** `hello` answer: who the runner is. */
export interface HelloReply {
  id: number;
  type: 'hello';
  v: number;
  /** `kd-trt-runner` (native) or `kd-trt-standin` (the ONNX Runtime stand-in). */
  runner: string;
  /** `tensorrt` or `onnxruntime-standin`. */
  impl: string;
  /** TensorRT version the runner was built against (`8.2.1`), or ONNX Runtime's version in the stand-in. */
  version: string;
  /** `bindings` (TensorRT 8.0–8.4: enqueueV2), `tensors` (8.5+ and 10: enqueueV3) or `onnxruntime`. */
  api: string;
}

/** `load` answer. */
export interface LoadedReply {
  id: number;
  type: 'loaded';
  engine: string;
  path: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** `infer` answer: the outputs were written into the shared-memory file where the request said. */
export interface ResultReply {
  id: number;
  type: 'result';
  engine: string;
  outputs: (TensorRegion & { shape: number[] })[];
}

/** An error frame; `id` 0 when the request could not be read far enough to know its id. */
export interface ErrorReply {
  id: number;
  type: 'error';
  code: RunnerErrorCode;
  message: string;
}

/** Replies, runner → agent. */
export type RunnerReply =
  | HelloReply
  | LoadedReply
  | { id: number; type: 'unloaded'; engine: string }
  | ResultReply
  | { id: number; type: 'bye' }
  | ErrorReply;

/** Encodes one message as a frame: u32 little-endian body length, then the JSON body. */
export function encodeFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  if (body.length > MAX_FRAME_BYTES) throw new RangeError(`frame body of ${body.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32LE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/** What {@link FrameDecoder.push} finds: a whole frame body, or the length of a frame too large to read (its body is skipped). */
export type DecodedFrame = { kind: 'frame'; body: Buffer } | { kind: 'oversize'; length: number };

/**
 * Splits a byte stream into frames. A length above `maxBytes` is reported once as `oversize` and that many bytes
 * are then skipped as they arrive, without buffering them, so the stream stays in step.
 */
export class FrameDecoder {
  readonly #max: number;
  #buf: Buffer = Buffer.alloc(0);
  #skip = 0;

  constructor(maxBytes = MAX_FRAME_BYTES) {
    this.#max = maxBytes;
  }

  /** Bytes held that do not yet make a whole frame. */
  get pending(): number {
    return this.#buf.length;
  }

  push(chunk: Buffer): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    let data = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    for (;;) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, data.length);
        this.#skip -= n;
        data = data.subarray(n);
        if (this.#skip > 0) break;
      }
      if (data.length < 4) break;
      const length = data.readUInt32LE(0);
      if (length > this.#max) {
        out.push({ kind: 'oversize', length });
        this.#skip = length;
        data = data.subarray(4);
        continue;
      }
      if (data.length < 4 + length) break;
      out.push({ kind: 'frame', body: Buffer.from(data.subarray(4, 4 + length)) });
      data = data.subarray(4 + length);
    }
    this.#buf = Buffer.from(data);
    return out;
  }
}

/** Bytes of a tensor: elements × element size. */
export function tensorBytes(spec: Pick<TensorSpec, 'dtype' | 'shape'>): number {
  return spec.shape.reduce((a, b) => a * b, 1) * TENSOR_DTYPES[spec.dtype];
}

/** A field of a message is missing or wrong; carries the code of the error frame to answer with. */
export class ProtocolViolation extends Error {
  readonly code: RunnerErrorCode;
  constructor(code: RunnerErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

type Obj = Record<string, unknown>;

function bad(message: string): never {
  throw new ProtocolViolation('BAD_REQUEST', message);
}

function field(o: Obj, name: string, where: string): unknown {
  if (!Object.hasOwn(o, name)) bad(`${where}: missing '${name}'`);
  return o[name];
}

function str(o: Obj, name: string, where: string, max = 4096): string {
  const v = field(o, name, where);
  if (typeof v !== 'string' || v.length === 0 || v.length > max || v.includes('\0')) {
    bad(`${where}: '${name}' must be a non-empty string of at most ${max} characters`);
  }
  return v;
}

/** A non-negative safe integer (the native runner reads numbers as doubles and checks the same bound). */
function uint(o: Obj, name: string, where: string): number {
  const v = field(o, name, where);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${where}: '${name}' must be an integer >= 0, got ${JSON.stringify(v)}`);
  return v;
}

function arr(o: Obj, name: string, where: string, max: number): unknown[] {
  const v = field(o, name, where);
  if (!Array.isArray(v) || v.length > max) bad(`${where}: '${name}' must be an array of at most ${max} entries`);
  return v;
}

function obj(v: unknown, where: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`${where} must be an object`);
  return v as Obj;
}

function shape(o: Obj, name: string, where: string): number[] {
  const dims = arr(o, name, where, 8);
  if (dims.length === 0 || !dims.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 1 && d <= 1 << 30)) {
    bad(`${where}: '${name}' must be 1 to 8 positive integer dims`);
  }
  return dims as number[];
}

function region(v: unknown, where: string): TensorRegion {
  const o = obj(v, where);
  return { name: str(o, 'name', where, 256), offset: uint(o, 'offset', where), bytes: uint(o, 'bytes', where) };
}

/** The id of a message, or 0 when it has none that is valid. */
export function messageId(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  const id = (v as Obj).id;
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 1 ? id : 0;
}

/**
 * Parses and checks one request body as the runner must: JSON object, known type, every field of the right type.
 * Throws {@link ProtocolViolation} (BAD_FRAME, BAD_REQUEST, UNKNOWN_TYPE) naming what is wrong. Bounds against the
 * shared-memory file and the engine are checked later, by whoever has them.
 */
export function parseRequest(body: Buffer): RunnerRequest {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new ProtocolViolation('BAD_FRAME', `frame body is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProtocolViolation('BAD_FRAME', 'frame body is not a JSON object');
  const o = v as Obj;
  const id = messageId(o);
  if (id === 0) bad(`'id' must be an integer >= 1`);
  const type = o.type;
  switch (type) {
    case 'hello': {
      const versions = arr(o, 'versions', 'hello', 16);
      if (!versions.every((x) => typeof x === 'number' && Number.isSafeInteger(x))) bad(`hello: 'versions' must be integers`);
      return { id, type, versions: versions as number[] };
    }
    case 'load': {
      const engine = str(o, 'engine', 'load', 64);
      if (!ENGINE_KEY_RE.test(engine)) bad(`load: 'engine' must match ${ENGINE_KEY_RE.source}`);
      return { id, type, engine, path: str(o, 'path', 'load') };
    }
    case 'unload': {
      const engine = str(o, 'engine', 'unload', 64);
      if (!ENGINE_KEY_RE.test(engine)) bad(`unload: 'engine' must match ${ENGINE_KEY_RE.source}`);
      return { id, type, engine };
    }
    case 'infer': {
      const engine = str(o, 'engine', 'infer', 64);
      if (!ENGINE_KEY_RE.test(engine)) bad(`infer: 'engine' must match ${ENGINE_KEY_RE.source}`);
      const shm = str(o, 'shm', 'infer');
      const inputs = arr(o, 'inputs', 'infer', 32).map((x, i) => {
        const where = `infer.inputs[${i}]`;
        return { ...region(x, where), shape: shape(obj(x, where), 'shape', where) };
      });
      const outputs = arr(o, 'outputs', 'infer', 32).map((x, i) => region(x, `infer.outputs[${i}]`));
      return { id, type, engine, shm, inputs, outputs };
    }
    case 'shutdown':
      return { id, type };
    default:
      throw new ProtocolViolation('UNKNOWN_TYPE', `unknown request type ${JSON.stringify(type)}`);
  }
}

/**
 * Checks that every region lies inside a file of `fileSize` bytes and that no two overlap. Throws
 * {@link ProtocolViolation} OUT_OF_BOUNDS naming the region.
 */
export function checkRegions(regions: readonly TensorRegion[], fileSize: number): void {
  for (const r of regions) {
    if (r.bytes === 0 || r.offset > fileSize || r.bytes > fileSize - r.offset) {
      throw new ProtocolViolation('OUT_OF_BOUNDS', `region '${r.name}' [${r.offset}, +${r.bytes}) is outside the ${fileSize}-byte shared-memory file`);
    }
  }
  const sorted = [...regions].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if (sorted[i]!.offset < prev.offset + prev.bytes) {
      throw new ProtocolViolation('OUT_OF_BOUNDS', `regions '${prev.name}' and '${sorted[i]!.name}' overlap`);
    }
  }
}

/** Whether `path` names a file directly inside `shmDir` with an allowed name (no `..`, no sub-folders, no dot files). */
export function shmPathAllowed(shmDir: string, path: string): boolean {
  const dir = shmDir.endsWith('/') ? shmDir.slice(0, -1) : shmDir;
  if (!path.startsWith(dir + '/')) return false;
  return SHM_NAME_RE.test(path.slice(dir.length + 1));
}

function isSpecList(v: unknown): v is TensorSpec[] {
  return Array.isArray(v) && v.every((t) => {
    if (typeof t !== 'object' || t === null) return false;
    const s = t as Obj;
    return typeof s.name === 'string' && typeof s.dtype === 'string' && Object.hasOwn(TENSOR_DTYPES, s.dtype) &&
      Array.isArray(s.shape) && s.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 1);
  });
}

/** Parses and checks one reply body; returns undefined when it is not a valid reply (the client treats that as a protocol failure). */
export function parseReply(body: Buffer): RunnerReply | undefined {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Obj;
  if (typeof o.id !== 'number' || !Number.isSafeInteger(o.id) || o.id < 0) return undefined;
  switch (o.type) {
    case 'hello':
      return typeof o.v === 'number' && typeof o.runner === 'string' && typeof o.impl === 'string' && typeof o.version === 'string' &&
        typeof o.api === 'string' ? (o as unknown as HelloReply) : undefined;
    case 'loaded':
      return typeof o.engine === 'string' && typeof o.path === 'string' && isSpecList(o.inputs) && isSpecList(o.outputs)
        ? (o as unknown as LoadedReply) : undefined;
    case 'unloaded':
      return typeof o.engine === 'string' ? (o as unknown as RunnerReply) : undefined;
    case 'result':
      return typeof o.engine === 'string' && Array.isArray(o.outputs) && o.outputs.every((r) => {
        const x = r as Obj;
        return typeof x === 'object' && x !== null && typeof x.name === 'string' && Number.isSafeInteger(x.offset) &&
          Number.isSafeInteger(x.bytes) && Array.isArray(x.shape);
      }) ? (o as unknown as ResultReply) : undefined;
    case 'bye':
      return o as unknown as RunnerReply;
    case 'error':
      return typeof o.code === 'string' && (RUNNER_ERROR_CODES as readonly string[]).includes(o.code) && typeof o.message === 'string'
        ? (o as unknown as ErrorReply) : undefined;
    default:
      return undefined;
  }
}
