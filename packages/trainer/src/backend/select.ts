import * as tf from '../tf.js';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../errors.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { registerCpuKernelFixes, registerWasmKernels } from './kernels/register-all.js';
import { ensureTrainingGradients } from './register-gradients.js';
import { activateWebGpu, WEBGPU_INSTALL_HINT } from './webgpu.js';

/** Backend names accepted by {@link selectBackend} (and the CLI's --backend). */
export const BACKEND_NAMES = ['auto', 'tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const;

/** One of {@link BACKEND_NAMES}. */
export type BackendName = (typeof BACKEND_NAMES)[number];

/** The backend that was made active. */
export interface SelectedBackend {
  /** tfjs backend name now active: 'tensorflow', 'webgpu', 'wasm' or 'cpu'. */
  name: string;
  /** One line for logs: what runs the kernels. */
  description: string;
}

type ConcreteBackend = Exclude<BackendName, 'auto'>;

/**
 * What 'auto' tries, fastest first. Not webgpu: training cannot run on it yet (see
 * WEBGPU_CANNOT_TRAIN in webgpu.ts), so a GPU machine without tfjs-node-gpu would stop at the first step.
 */
const AUTO_ORDER: readonly ConcreteBackend[] = ['tensorflow-gpu', 'tensorflow', 'wasm'];

const DOCS = 'docs/backends.md';

const INSTALL_HINT: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu':
    'install it with `npm install @tensorflow/tfjs-node-gpu@4.22.0` (Linux x64 with CUDA 11.x and cuDNN 8)',
  tensorflow: 'install it with `npm install @tensorflow/tfjs-node@4.22.0` (Linux x64, macOS, Windows)',
};

const NODE_PACKAGE: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

async function activate(name: ConcreteBackend): Promise<SelectedBackend> {
  if (name === 'tensorflow-gpu' || name === 'tensorflow') {
    const pkg = NODE_PACKAGE[name];
    // A computed specifier: neither tsc nor a bundler may try to resolve an optional native package.
    const specifier = [pkg].join('');
    try {
      await import(specifier);
    } catch (err) {
      const missing = (err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(pkg);
      throw new BackendError(missing ? `${pkg} is not installed` : `${pkg} could not be loaded (${(err as Error).message})`, { cause: err });
    }
    if (!(await tf.setBackend('tensorflow'))) {
      throw new BackendError(`${pkg} loaded but the 'tensorflow' backend failed to initialise`);
    }
    return { name: 'tensorflow', description: `TensorFlow C library via ${pkg}${name === 'tensorflow-gpu' ? ' (CUDA)' : ''}` };
  }
  if (name === 'webgpu') return activateWebGpu();
  if (name === 'wasm') {
    registerWasmKernels();
    if (!(await tf.setBackend('wasm'))) throw new BackendError('the wasm backend failed to initialise');
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    return { name: 'wasm', description: `WebAssembly + XNNPACK (${simd ? 'SIMD' : 'no SIMD'}, 1 thread) with kd-edge training kernels` };
  }
  if (!(await tf.setBackend('cpu'))) throw new BackendError('the cpu backend failed to initialise');
  // The cpu backend greets its first tensor with advice to install tfjs-node; our own backend line
  // (and docs/backends.md) already says what runs and what else could.
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  return { name: 'cpu', description: 'plain JavaScript reference kernels (slow; for tests)' };
}

function installHint(candidate: ConcreteBackend, message: string): string {
  if (candidate === 'tensorflow-gpu' || candidate === 'tensorflow') return `; ${INSTALL_HINT[candidate]}`;
  if (candidate === 'webgpu' && message.includes('is not installed')) return `; ${WEBGPU_INSTALL_HINT}`;
  return '';
}

/**
 * Makes a tfjs backend active and returns what was chosen. 'auto' tries tensorflow-gpu, then
 * tensorflow, then wasm; webgpu only when named (it validates and predicts, but cannot train yet); an
 * explicit name that cannot load throws BackendError with install instructions.
 * @example
 * const { name } = await selectBackend('auto', consoleLogger());
 */
export async function selectBackend(name: BackendName, logger: Logger = silentLogger): Promise<SelectedBackend> {
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
    throw new RangeError(`backend must be one of ${BACKEND_NAMES.join(', ')}; got '${String(name)}'`);
  }
  await ensureTrainingGradients();
  // The cpu backend is the reference every backend is tested against, whichever is chosen.
  registerCpuKernelFixes();
  const order: readonly ConcreteBackend[] = name === 'auto' ? AUTO_ORDER : [name];
  const failures: string[] = [];
  for (const [i, candidate] of order.entries()) {
    try {
      const chosen = await activate(candidate);
      if (failures.length > 0) {
        // Native packages that are simply not installed are the normal case: say so in one line.
        if (failures.every((f) => f.includes('is not installed'))) {
          const skipped = order.slice(0, i).map((o) => NODE_PACKAGE[o as 'tensorflow']).join(', ');
          logger.info(`backend: native TensorFlow not installed (${skipped}), using ${candidate}; see ${DOCS}`);
        } else {
          logger.warn(`backend '${candidate}' in use; faster ones are unavailable: ${failures.join('; ')}. See ${DOCS}.`);
        }
      }
      logger.info(`backend: ${chosen.name} — ${chosen.description}`);
      return chosen;
    } catch (err) {
      const message = (err as Error).message;
      failures.push(`${candidate}: ${message}${installHint(candidate, message)}`);
    }
  }
  const what = name === 'auto' ? 'no backend could be loaded' : `backend '${name}' is unavailable`;
  throw new BackendError(`${what}:\n  - ${failures.join('\n  - ')}\nSee ${DOCS}.`);
}
