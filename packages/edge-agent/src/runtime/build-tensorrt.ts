import { spawn } from 'node:child_process';
import { chmod, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fsyncDir, silentLogger, tempSibling, type Logger } from '@kd-edge/core';
import {
  DEFAULT_CUDA_INCLUDE_DIRS, DEFAULT_CUDA_LIB_DIRS, DEFAULT_TENSORRT_INCLUDE_DIRS, DEFAULT_TENSORRT_LIB_DIRS, describeTensorrtApi, findDirWith,
  readTensorrtVersion, type TensorrtHeaderVersion,
} from './tensorrt-headers.js';
import { checkRunnerSource, locateRunnerSource, runnerSourceFiles } from './runner-source.js';
import { TrtBuildError } from './trt-build-error.js';
import { RunnerClient } from './trt-runner/runner-client.js';
import type { HelloReply } from './trt-runner/protocol.js';

/** Options of {@link buildTensorrtRunner}. */
export interface BuildTensorrtRunnerOptions {
  /** Where the binary goes; replaced only by a binary that built and passed its self-check. */
  out: string;
  /** The runner's source folder (default: the one shipped with the agent, see {@link locateRunnerSource}). */
  source?: string;
  /** TensorRT's headers (`NvInferRuntime.h`, `NvInferVersion.h`); default: the first of {@link DEFAULT_TENSORRT_INCLUDE_DIRS} that has them. */
  tensorrtInclude?: string;
  /** The folder with `libnvinfer.so`; default: the first of {@link DEFAULT_TENSORRT_LIB_DIRS} that has it. */
  tensorrtLib?: string;
  /** CUDA's headers (`cuda_runtime_api.h`); default `/usr/local/cuda/include`. */
  cudaInclude?: string;
  /** The folder with `libcudart.so`; default `/usr/local/cuda/lib64`. */
  cudaLib?: string;
  /** The C++17 compiler, split on spaces (`ccache g++`); default `$CXX`, else `g++`. */
  cxx?: string;
  /** Optimisation and debug flags (default `-O2 -g`, as the Makefile's CXXFLAGS). */
  cxxFlags?: readonly string[];
  /** The runner's `--shm-dir` in the self-check and in the printed configuration (default `/dev/shm`). */
  shmDir?: string;
  /** Environment of the compiler and of the self-check (default `process.env`); its CXX is read when `cxx` is not given. */
  env?: NodeJS.ProcessEnv;
  /** The compile is killed after this long (default 15 min: a Nano compiles for minutes). */
  compileTimeoutMs?: number;
  /** Progress lines (info). */
  logger?: Logger;
}

/** The `runtime.trtRunner` section of agent.yaml that serves through the built runner (keys as in agent-config.ts). */
export interface TrtRunnerConfigSnippet {
  runtime: { trtRunner: { command: string[]; shmDir: string } };
}

/** What {@link buildTensorrtRunner} built and checked. */
export interface BuiltTensorrtRunner {
  /** The installed binary (absolute). */
  path: string;
  /** Whether a file was there before and has been replaced. */
  replaced: boolean;
  source: string;
  tensorrt: TensorrtHeaderVersion & { include: string; lib: string };
  cuda: { include: string; lib: string };
  compiler: { command: string[]; version: string };
  /** The fresh binary's hello (with the native runner's `library` and `compatHeaders`) and what else the self-check saw. */
  selfCheck: { hello: HelloReply & { library?: string; compatHeaders?: boolean }; request: string; exitCode: number | null };
  /** Things to know that did not fail the build (a libnvinfer of another minor version than the headers). */
  warnings: string[];
  config: TrtRunnerConfigSnippet;
}

// Paths the dynamic linker searches anyway: no -rpath for them (and never -I/usr/include, which breaks libstdc++'s #include_next).
const SYSTEM_LIB_DIRS = new Set(['/lib', '/usr/lib', '/lib64', '/usr/lib64', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu']);
const SYSTEM_INCLUDE_DIRS = new Set(['/usr/include', '/usr/local/include']);
const OUTPUT_TAIL_LINES = 30;

/**
 * `kd-agent runtime build-tensorrt`: compiles the native TensorRT runner shipped with the agent against this device's
 * TensorRT and CUDA, into a temporary file beside `out`; runs the fresh binary's self-check (hello as the headers say,
 * one request answered, clean shutdown); only then renames it over `out`. Any failure leaves `out` as it was and
 * throws a {@link TrtBuildError} (AGENT_TRT_BUILD_*) that names what is wrong.
 * @example
 * const built = await buildTensorrtRunner({ out: '/var/lib/kd-agent/runtime/kd-trt-runner' });
 * console.log(built.tensorrt.version, built.config);
 */
export async function buildTensorrtRunner(options: BuildTensorrtRunnerOptions): Promise<BuiltTensorrtRunner> {
  if (typeof options.out !== 'string' || options.out === '') throw new TypeError('out must be the path of the runner binary to write');
  const log = options.logger ?? silentLogger;
  const env = options.env ?? process.env;
  const out = resolve(options.out);
  const shmDir = options.shmDir ?? '/dev/shm';
  if (!shmDir.startsWith('/')) throw new RangeError(`shmDir must be an absolute path (the runner's --shm-dir), got ${JSON.stringify(shmDir)}`);

  const source = options.source !== undefined ? await checkRunnerSource(resolve(options.source)) : await locateRunnerSource();
  const trtInclude = await findDirWith('TensorRT headers', dirsOf(options.tensorrtInclude, DEFAULT_TENSORRT_INCLUDE_DIRS), ['NvInferRuntime.h', 'NvInferVersion.h'], '--tensorrt-include');
  const version = await readTensorrtVersion(trtInclude);
  const cudaInclude = await findDirWith('CUDA headers', dirsOf(options.cudaInclude, DEFAULT_CUDA_INCLUDE_DIRS), ['cuda_runtime_api.h'], '--cuda-include');
  const trtLib = await findDirWith('TensorRT library', dirsOf(options.tensorrtLib, DEFAULT_TENSORRT_LIB_DIRS), ['libnvinfer.so'], '--tensorrt-lib', 'AGENT_TRT_BUILD_LIBS_NOT_FOUND');
  const cudaLib = await findDirWith('CUDA runtime library', dirsOf(options.cudaLib, DEFAULT_CUDA_LIB_DIRS), ['libcudart.so'], '--cuda-lib', 'AGENT_TRT_BUILD_LIBS_NOT_FOUND');
  log.info(`TensorRT ${version.version} headers in ${trtInclude}${version.compatHeaders ? ' (kd-edge compat declarations: a compile check, not TensorRT)' : ''}: building for the ${describeTensorrtApi(version.api)}`);

  const cxxSource = options.cxx !== undefined ? '--cxx' : env.CXX ? 'CXX' : 'the default';
  const cxx = (options.cxx ?? (env.CXX || 'g++')).trim().split(/\s+/).filter((s) => s !== '');
  if (cxx.length === 0) throw new TrtBuildError('AGENT_TRT_BUILD_COMPILER_NOT_FOUND', `the compiler from ${cxxSource} is empty`);
  const compilerVersion = await compilerVersionOf(cxx, cxxSource, env);
  log.info(`compiler ${cxx.join(' ')}: ${compilerVersion}`);

  await mkdir(dirname(out), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
    throw new TrtBuildError('AGENT_TRT_BUILD_OUTPUT', `cannot create ${dirname(out)}: ${err.code ?? err.message}`, { cause: err });
  });
  const tmp = tempSibling(out);
  try {
    const args = [
      '-std=c++17', '-Wall', '-Wextra', '-Wpedantic', ...(options.cxxFlags ?? ['-O2', '-g']),
      ...[trtInclude, cudaInclude].filter((d, i, all) => !SYSTEM_INCLUDE_DIRS.has(d) && all.indexOf(d) === i).map((d) => `-I${d}`),
      '-o', tmp, ...(await runnerSourceFiles(source)),
      ...[trtLib, cudaLib].filter((d, i, all) => all.indexOf(d) === i).flatMap((d) => (SYSTEM_LIB_DIRS.has(d) ? [`-L${d}`] : [`-L${d}`, `-Wl,-rpath,${d}`])),
      '-lnvinfer', '-lcudart',
    ];
    log.info(`compiling ${source} -> ${out}`);
    await compile(cxx, args, env, options.compileTimeoutMs ?? 15 * 60_000);
    await chmod(tmp, 0o755);
    await fsyncFile(tmp);
    const selfCheck = await runSelfCheck(tmp, shmDir, version, env);
    const replaced = await stat(out).then(() => true, () => false);
    await rename(tmp, out).catch((err: NodeJS.ErrnoException) => {
      throw new TrtBuildError('AGENT_TRT_BUILD_OUTPUT', `cannot move the built runner to ${out}: ${err.code ?? err.message}`, { cause: err });
    });
    await fsyncDir(dirname(out));
    return {
      path: out, replaced, source,
      tensorrt: { ...version, include: trtInclude, lib: trtLib },
      cuda: { include: cudaInclude, lib: cudaLib },
      compiler: { command: cxx, version: compilerVersion },
      selfCheck: { hello: selfCheck.hello, request: selfCheck.request, exitCode: selfCheck.exitCode },
      warnings: selfCheck.warnings,
      config: { runtime: { trtRunner: { command: [out, '--shm-dir', shmDir], shmDir } } },
    };
  } finally {
    await rm(tmp, { force: true });
  }
}

function dirsOf(given: string | undefined, defaults: readonly string[]): readonly string[] {
  return given !== undefined ? [resolve(given)] : defaults;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  error?: NodeJS.ErrnoException;
  timedOut: boolean;
}

/** Runs a program without a shell, keeping the tail of its stdout and stderr together. */
function run(argv: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Run> {
  return new Promise((resolveRun) => {
    const child = spawn(argv[0]!, argv.slice(1), { shell: false, stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    let timedOut = false;
    let error: NodeJS.ErrnoException | undefined;
    const keep = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.length > 256 * 1024) output = output.slice(-128 * 1024);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      error = e;
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code, signal, output, timedOut, ...(error ? { error } : {}) });
    });
  });
}

function tail(text: string, lines = OUTPUT_TAIL_LINES): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function compilerVersionOf(cxx: readonly string[], from: string, env: NodeJS.ProcessEnv): Promise<string> {
  const r = await run([...cxx, '--version'], env, 60_000);
  if (r.error !== undefined || r.code !== 0) {
    const why = r.error !== undefined ? (r.error.code ?? r.error.message) : r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`;
    throw new TrtBuildError(
      'AGENT_TRT_BUILD_COMPILER_NOT_FOUND',
      `the C++ compiler ${JSON.stringify(cxx.join(' '))} (from ${from}) does not run (${why}); install g++ (C++17: GCC 7 or later) or give one with --cxx or CXX`,
    );
  }
  return r.output.split('\n')[0]!.trim().slice(0, 200);
}

async function compile(cxx: readonly string[], args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  const r = await run([...cxx, ...args], env, timeoutMs);
  if (r.code === 0 && r.error === undefined) return;
  const why = r.error !== undefined ? `did not run (${r.error.code ?? r.error.message})`
    : r.timedOut ? `was killed after ${Math.round(timeoutMs / 1000)} s` : `exited with ${r.code ?? r.signal}`;
  const lines = tail(r.output);
  throw new TrtBuildError('AGENT_TRT_BUILD_COMPILE_FAILED', `${cxx.join(' ')} ${why}${lines ? `; its last lines:\n${lines}` : ' with no output'}`);
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

interface SelfCheck {
  hello: HelloReply & { library?: string; compatHeaders?: boolean };
  request: string;
  exitCode: number | null;
  warnings: string[];
}

/**
 * What the protocol offers to check a binary without an engine: hello (who it is, the TensorRT version and API it was
 * built for, the libnvinfer it loaded), one request answered (`unload` of an engine it does not have: NO_ENGINE), and
 * shutdown with exit 0. A runner that cannot find libnvinfer or libcudart fails here, before it replaces anything.
 */
async function runSelfCheck(binary: string, shmDir: string, headers: TensorrtHeaderVersion, env: NodeJS.ProcessEnv): Promise<SelfCheck> {
  const fail = (message: string, cause?: unknown): never => {
    throw new TrtBuildError('AGENT_TRT_BUILD_SELF_CHECK_FAILED', `the built runner ${message}`, { cause });
  };
  let client: RunnerClient | undefined;
  try {
    client = await RunnerClient.start([binary, '--shm-dir', shmDir], { env, handshakeTimeoutMs: 30_000, requestTimeoutMs: 30_000 })
      .catch((err: Error) => fail(`did not start and answer hello: ${err.message}`, err));
    const hello = client.hello as HelloReply & { library?: unknown; compatHeaders?: unknown };
    const expected = { runner: 'kd-trt-runner', impl: 'tensorrt', version: headers.version, api: headers.api };
    for (const [k, v] of Object.entries(expected)) {
      if ((hello as unknown as Record<string, unknown>)[k] !== v) fail(`answered hello with ${k} ${JSON.stringify((hello as unknown as Record<string, unknown>)[k])}, expected ${JSON.stringify(v)} (from the headers it was built against)`);
    }
    if (typeof hello.compatHeaders === 'boolean' && hello.compatHeaders !== headers.compatHeaders) {
      fail(`says compatHeaders ${String(hello.compatHeaders)}, but the headers it was built against say ${String(headers.compatHeaders)}`);
    }
    const warnings: string[] = [];
    if (typeof hello.library === 'string' && hello.library !== headers.version) {
      const [lm, ln] = hello.library.split('.');
      if (lm !== String(headers.major)) fail(`loaded libnvinfer ${hello.library}, but was built against TensorRT ${headers.version} headers: install the matching libnvinfer-dev, or point --tensorrt-lib at it`);
      if (ln !== String(headers.minor)) warnings.push(`libnvinfer ${hello.library} is loaded, the headers are TensorRT ${headers.version}: rebuild after upgrading either`);
    }
    const reply = await client.requestRaw({ type: 'unload', engine: 'kd-build-self-check' })
      .catch((err: Error) => fail(`did not answer a request: ${err.message}`, err));
    if (reply.type !== 'error' || reply.code !== 'NO_ENGINE') fail(`answered unload of an engine it does not have with ${JSON.stringify(reply)}, expected a NO_ENGINE error`);
    const exit = await client.close();
    if (exit.code !== 0 || !exit.expected) fail(`did not shut down cleanly (${exit.reason ?? `exit ${exit.code ?? exit.signal}`})${exit.stderrTail ? `; its stderr:\n${tail(exit.stderrTail, 10)}` : ''}`);
    return {
      hello: {
        ...client.hello,
        ...(typeof hello.library === 'string' ? { library: hello.library } : {}),
        ...(typeof hello.compatHeaders === 'boolean' ? { compatHeaders: hello.compatHeaders } : {}),
      },
      request: 'unload of an unknown engine answered NO_ENGINE',
      exitCode: exit.code,
      warnings,
    };
  } finally {
    if (client !== undefined && !client.exitedAlready) {
      client.kill();
      await client.exited;
    }
  }
}
