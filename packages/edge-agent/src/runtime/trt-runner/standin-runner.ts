// STAND-IN for the native TensorRT runner (packages/edge-agent/native/trt-runner): it speaks exactly the same
// protocol (docs/trt-runner.md) with ONNX Runtime inside, so the agent side can be tested where there is no GPU.
// Its `load` takes an .onnx path where the real runner takes a serialized engine. It is not TensorRT and must never be
// reported as TensorRT: its hello answers runner 'kd-trt-standin', impl 'onnxruntime-standin'.
//
// Run: node --conditions=source --import tsx standin-runner.ts [--shm-dir DIR] [--max-engines N] [--threads N]
import { lstat, open, type FileHandle } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import {
  DEFAULT_MAX_ENGINES, encodeFrame, FrameDecoder, MAX_FRAME_BYTES, PROTOCOL_VERSION, ProtocolViolation, checkRegions, messageId,
  parseRequest, shmPathAllowed, tensorBytes, TENSOR_DTYPES, type RunnerReply, type RunnerRequest, type TensorDtype, type TensorSpec,
} from './protocol.js';

/** Options of {@link runStandinRunner}. */
export interface StandinRunnerOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Where log lines go (default process.stderr). */
  log?: (line: string) => void;
  /** The only directory shared-memory files may be in (default /dev/shm). */
  shmDir?: string;
  maxEngines?: number;
  /** ONNX Runtime intra-op threads (default 1). */
  threads?: number;
}

interface StandinEngine {
  path: string;
  session: ort.InferenceSession;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

const LOG_PREFIX = 'kd-trt-standin (stand-in: ONNX Runtime, not TensorRT)';
const MAX_OPEN_SHM = 8;

function specs(meta: readonly ort.InferenceSession.ValueMetadata[], what: string): TensorSpec[] {
  return meta.map((m) => {
    if (!m.isTensor) throw new ProtocolViolation('LOAD_FAILED', `${what} '${m.name}' is not a tensor`);
    if (!Object.hasOwn(TENSOR_DTYPES, m.type)) throw new ProtocolViolation('LOAD_FAILED', `${what} '${m.name}' has unsupported type ${m.type}`);
    const shape = m.shape.map((d) => (typeof d === 'number' && d >= 1 ? d : -1));
    // Protocol v1 has static shapes only, like the engines the agent builds (trtexec without shape profiles).
    if (shape.includes(-1)) throw new ProtocolViolation('LOAD_FAILED', `${what} '${m.name}' has a dynamic shape [${m.shape.join(', ')}]; v1 needs static shapes`);
    return { name: m.name, dtype: m.type as TensorDtype, shape };
  });
}

function typedView(bytes: Uint8Array, dtype: TensorDtype): ort.Tensor['data'] {
  const n = bytes.length / TENSOR_DTYPES[dtype];
  switch (dtype) {
    case 'float32': return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    case 'float16': return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    case 'int8': return new Int8Array(bytes.buffer, bytes.byteOffset, n);
    case 'int32': return new Int32Array(bytes.buffer, bytes.byteOffset, n);
    case 'int64': return new BigInt64Array(bytes.buffer, bytes.byteOffset, n);
    case 'uint8':
    case 'bool': return bytes;
  }
}

/**
 * Serves the runner protocol on a pair of streams until the input ends or a `shutdown` arrives. Requests are answered
 * one at a time in order, as the native runner does. Resolves when done; never rejects on bad input.
 */
export async function runStandinRunner(options: StandinRunnerOptions): Promise<void> {
  const shmDir = options.shmDir ?? '/dev/shm';
  const maxEngines = options.maxEngines ?? DEFAULT_MAX_ENGINES;
  const threads = options.threads ?? 1;
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const engines = new Map<string, StandinEngine>();
  const shm = new Map<string, { fh: FileHandle; ino: number }>();
  const decoder = new FrameDecoder(MAX_FRAME_BYTES);
  let done = false;

  const send = (reply: RunnerReply): void => {
    options.output.write(encodeFrame(reply));
  };

  const openShm = async (path: string): Promise<{ fh: FileHandle; size: number }> => {
    if (!shmPathAllowed(shmDir, path)) throw new ProtocolViolation('SHM_INVALID', `shared-memory path ${JSON.stringify(path)} is not a plain file name inside ${shmDir}`);
    let st;
    try {
      st = await lstat(path);
    } catch (e) {
      throw new ProtocolViolation('SHM_INVALID', `cannot open shared-memory file ${path}: ${(e as Error).message}`);
    }
    if (!st.isFile()) throw new ProtocolViolation('SHM_INVALID', `shared-memory file ${path} is not a regular file`);
    let entry = shm.get(path);
    if (entry !== undefined && entry.ino !== st.ino) {
      await entry.fh.close().catch(() => undefined);
      shm.delete(path);
      entry = undefined;
    }
    if (entry === undefined) {
      try {
        entry = { fh: await open(path, 'r+'), ino: st.ino };
      } catch (e) {
        throw new ProtocolViolation('SHM_INVALID', `cannot open shared-memory file ${path}: ${(e as Error).message}`);
      }
      if (shm.size >= MAX_OPEN_SHM) {
        const [oldest, old] = shm.entries().next().value as [string, { fh: FileHandle }];
        shm.delete(oldest);
        await old.fh.close().catch(() => undefined);
      }
      shm.set(path, entry);
    }
    return { fh: entry.fh, size: (await entry.fh.stat()).size };
  };

  const handle = async (req: RunnerRequest): Promise<RunnerReply> => {
    switch (req.type) {
      case 'hello':
        if (!req.versions.includes(PROTOCOL_VERSION)) {
          throw new ProtocolViolation('UNSUPPORTED_VERSION', `this runner speaks protocol ${PROTOCOL_VERSION}, asked for [${req.versions.join(', ')}]`);
        }
        return { id: req.id, type: 'hello', v: PROTOCOL_VERSION, runner: 'kd-trt-standin', impl: 'onnxruntime-standin', version: ort.env.versions.common, api: 'onnxruntime' };
      case 'load': {
        if (!engines.has(req.engine) && engines.size >= maxEngines) {
          throw new ProtocolViolation('TOO_MANY_ENGINES', `${engines.size} engines are loaded (the most is ${maxEngines}); unload one first`);
        }
        let session: ort.InferenceSession;
        try {
          session = await ort.InferenceSession.create(req.path, { intraOpNumThreads: threads, interOpNumThreads: 1 });
        } catch (e) {
          throw new ProtocolViolation('LOAD_FAILED', `cannot load ${req.path}: ${(e as Error).message}`);
        }
        let inputs: TensorSpec[];
        let outputs: TensorSpec[];
        try {
          inputs = specs(session.inputMetadata, 'input');
          outputs = specs(session.outputMetadata, 'output');
        } catch (e) {
          await session.release();
          throw e;
        }
        // The old engine under this key stays until the new one has loaded; a failed load changes nothing.
        const previous = engines.get(req.engine);
        engines.set(req.engine, { path: req.path, session, inputs, outputs });
        if (previous !== undefined) await previous.session.release();
        log(`${LOG_PREFIX}: loaded ${req.path} as '${req.engine}'${previous ? ` (replaced ${previous.path})` : ''}`);
        return { id: req.id, type: 'loaded', engine: req.engine, path: req.path, inputs, outputs };
      }
      case 'unload': {
        const e = engines.get(req.engine);
        if (e === undefined) throw new ProtocolViolation('NO_ENGINE', `no engine '${req.engine}' is loaded`);
        engines.delete(req.engine);
        await e.session.release();
        return { id: req.id, type: 'unloaded', engine: req.engine };
      }
      case 'infer':
        return infer(req);
      case 'shutdown':
        done = true;
        return { id: req.id, type: 'bye' };
    }
  };

  const infer = async (req: Extract<RunnerRequest, { type: 'infer' }>): Promise<RunnerReply> => {
    const { fh, size } = await openShm(req.shm);
    checkRegions([...req.inputs, ...req.outputs], size);
    const engine = engines.get(req.engine);
    if (engine === undefined) throw new ProtocolViolation('NO_ENGINE', `no engine '${req.engine}' is loaded`);
    matchTensors(engine, req);
    const feeds: Record<string, ort.Tensor> = {};
    for (const spec of engine.inputs) {
      const r = req.inputs.find((x) => x.name === spec.name)!;
      const bytes = new Uint8Array(r.bytes);
      const { bytesRead } = await fh.read(bytes, 0, r.bytes, r.offset);
      if (bytesRead !== r.bytes) throw new ProtocolViolation('OUT_OF_BOUNDS', `input '${r.name}': read ${bytesRead} of ${r.bytes} bytes`);
      feeds[spec.name] = new ort.Tensor(spec.dtype, typedView(bytes, spec.dtype), spec.shape);
    }
    let results: ort.InferenceSession.ReturnType;
    try {
      results = await engine.session.run(feeds);
    } catch (e) {
      throw new ProtocolViolation('INFER_FAILED', `onnxruntime run failed: ${(e as Error).message}`);
    }
    const outputs = [];
    for (const spec of engine.outputs) {
      const r = req.outputs.find((x) => x.name === spec.name)!;
      const t = results[spec.name];
      const data = t?.data as ArrayBufferView | undefined;
      if (t === undefined || data === undefined || data.byteLength !== r.bytes) {
        throw new ProtocolViolation('INFER_FAILED', `output '${spec.name}' has ${data?.byteLength ?? 0} bytes, its region ${r.bytes}`);
      }
      await fh.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 0, r.bytes, r.offset);
      outputs.push({ name: r.name, offset: r.offset, bytes: r.bytes, shape: [...t.dims] });
    }
    return { id: req.id, type: 'result', engine: req.engine, outputs };
  };

  let chain = Promise.resolve();
  const enqueue = (body: Buffer): void => {
    chain = chain.then(async () => {
      if (done) return;
      let id = 0;
      try {
        try {
          id = messageId(JSON.parse(body.toString('utf8')));
        } catch {
          // parseRequest reports the bad JSON below.
        }
        send(await handle(parseRequest(body)));
      } catch (e) {
        const violation = e instanceof ProtocolViolation ? e : new ProtocolViolation('INTERNAL', (e as Error)?.message ?? String(e));
        if (violation.code === 'INTERNAL') log(`${LOG_PREFIX}: internal error: ${violation.message}`);
        send({ id, type: 'error', code: violation.code, message: violation.message });
      }
    });
  };

  log(`${LOG_PREFIX}: started (protocol ${PROTOCOL_VERSION}, onnxruntime ${ort.env.versions.common}, shm ${shmDir})`);
  await new Promise<void>((resolve) => {
    const finish = (): void => {
      options.input.removeListener('data', onData);
      resolve();
    };
    const onData = (chunk: Buffer): void => {
      for (const f of decoder.push(chunk)) {
        if (f.kind === 'oversize') {
          chain = chain.then(() => send({ id: 0, type: 'error', code: 'BAD_FRAME', message: `frame of ${f.length} bytes exceeds ${MAX_FRAME_BYTES}; skipped` }));
        } else {
          enqueue(f.body);
        }
      }
      void chain.then(() => {
        if (done) finish();
      });
    };
    options.input.on('data', onData);
    options.input.once('end', () => void chain.then(finish));
  });
  await chain;
  for (const e of engines.values()) await e.session.release().catch(() => undefined);
  for (const s of shm.values()) await s.fh.close().catch(() => undefined);
  log(`${LOG_PREFIX}: exiting`);
}

/** Inputs and outputs of a request must name each engine tensor once, with its shape and byte size. */
function matchTensors(engine: StandinEngine, req: Extract<RunnerRequest, { type: 'infer' }>): void {
  const mismatch = (m: string): never => {
    throw new ProtocolViolation('SHAPE_MISMATCH', m);
  };
  if (req.inputs.length !== engine.inputs.length) mismatch(`the engine has ${engine.inputs.length} input(s), the request names ${req.inputs.length}`);
  if (req.outputs.length !== engine.outputs.length) mismatch(`the engine has ${engine.outputs.length} output(s), the request names ${req.outputs.length}`);
  for (const spec of engine.inputs) {
    const r = req.inputs.filter((x) => x.name === spec.name);
    if (r.length !== 1) mismatch(`input '${spec.name}' must be named exactly once`);
    const shape = r[0]!.shape;
    if (shape.length !== spec.shape.length || shape.some((d, i) => d !== spec.shape[i])) {
      mismatch(`input '${spec.name}' has shape [${spec.shape.join(', ')}], the request says [${shape.join(', ')}]`);
    }
    if (r[0]!.bytes !== tensorBytes(spec)) mismatch(`input '${spec.name}' needs ${tensorBytes(spec)} bytes, the region has ${r[0]!.bytes}`);
  }
  for (const spec of engine.outputs) {
    const r = req.outputs.filter((x) => x.name === spec.name);
    if (r.length !== 1) mismatch(`output '${spec.name}' must be named exactly once`);
    if (r[0]!.bytes !== tensorBytes(spec)) mismatch(`output '${spec.name}' needs ${tensorBytes(spec)} bytes, the region has ${r[0]!.bytes}`);
  }
}

function parseArgs(argv: readonly string[]): Pick<StandinRunnerOptions, 'shmDir' | 'maxEngines' | 'threads'> {
  const out: Pick<StandinRunnerOptions, 'shmDir' | 'maxEngines' | 'threads'> = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new RangeError(`${flag} needs a value`);
    i++;
    if (flag === '--shm-dir') out.shmDir = value;
    else if (flag === '--max-engines' || flag === '--threads') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`${flag} must be a positive integer, got ${value}`);
      if (flag === '--max-engines') out.maxEngines = n;
      else out.threads = n;
    } else throw new RangeError(`unknown option ${flag} (allowed: --shm-dir, --max-engines, --threads)`);
  }
  return out;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  process.on('SIGPIPE', () => undefined);
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${LOG_PREFIX}: ${(e as Error).message}\n`);
    process.exit(2);
  }
  ort.env.logLevel = 'error';
  runStandinRunner({ input: process.stdin, output: process.stdout, ...args }).then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${LOG_PREFIX}: fatal: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
