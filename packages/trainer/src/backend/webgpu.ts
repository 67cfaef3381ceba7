import { createRequire } from 'node:module';
import * as tf from '../tf.js';
import { BackendError } from '../errors.js';

/** The two optional packages the webgpu backend loads: Dawn's Node binding and the tfjs backend. */
export const WEBGPU_PACKAGES = ['webgpu', '@tensorflow/tfjs-backend-webgpu'] as const;

/** How to install the webgpu backend's packages where they are missing. */
export const WEBGPU_INSTALL_HINT =
  'install them with `npm install webgpu@0.6.2 @tensorflow/tfjs-backend-webgpu@4.22.0` (optional dependencies of @kd-edge/trainer)';

/** Why 'webgpu' is unavailable on a machine whose GPU Dawn cannot use, and what to install. */
export const NO_ADAPTER_MESSAGE =
  'no WebGPU adapter found: Dawn found no GPU with a usable Vulkan driver (it does not use software drivers such as ' +
  'lavapipe or SwiftShader). Install a GPU driver with Vulkan support and the Vulkan loader (libvulkan1): on a ' +
  'workstation the NVIDIA driver or Mesa (mesa-vulkan-drivers) for AMD/Intel; on a Jetson the NVIDIA L4T Vulkan ' +
  'driver (nvidia-l4t-3d-core, part of JetPack)';

/** Why `kd-trainer train`/`distill` refuse the webgpu backend (val and predict run on it). */
export const WEBGPU_CANNOT_TRAIN =
  'kd-trainer cannot train on the webgpu backend yet: tfjs-backend-webgpu 4.22 cannot read a GPU tensor synchronously under ' +
  'Node (it needs OffscreenCanvas), and the training step reads its losses and gradient norm synchronously. Train with ' +
  '--backend tensorflow-gpu (CUDA) or wasm; val and predict run on webgpu (docs/backends.md)';

/** Environment variable with extra Dawn flags, separated by ';' (e.g. `adapter=NVIDIA RTX A2000;backend=vulkan`). */
export const DAWN_FLAGS_ENV = 'KD_TRAINER_DAWN_FLAGS';

// The parts of the `webgpu` package (its own types pull @webgpu/types' globals into the build) used here.
interface DawnAdapterInfo {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
}
interface DawnAdapter {
  info?: DawnAdapterInfo;
  requestAdapterInfo?: () => Promise<DawnAdapterInfo>;
}
interface DawnGpu {
  requestAdapter(options?: { powerPreference?: 'high-performance' | 'low-power' }): Promise<DawnAdapter | null>;
}
interface DawnModule {
  create(flags: string[]): DawnGpu;
  globals: Record<string, unknown>;
}

let activeDescription: string | undefined;
let syncReadsExplained = false;

/** Dawn flags from {@link DAWN_FLAGS_ENV}; none by default. */
export function dawnFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env[DAWN_FLAGS_ENV] ?? '').split(';').map((f) => f.trim()).filter((f) => f !== '');
}

// Both packages, checked before Dawn starts: the second one can only be imported once navigator.gpu is set.
function checkInstalled(): void {
  const require = createRequire(import.meta.url);
  for (const pkg of WEBGPU_PACKAGES) {
    try {
      require.resolve(pkg);
    } catch (err) {
      throw new BackendError(`${pkg} is not installed`, { cause: err });
    }
  }
}

async function importOptional<T>(pkg: string): Promise<T> {
  // A computed specifier: neither tsc nor a bundler may try to resolve an optional native package.
  const specifier = [pkg].join('');
  try {
    return (await import(specifier)) as T;
  } catch (err) {
    const missing = (err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(pkg);
    throw new BackendError(missing ? `${pkg} is not installed` : `${pkg} could not be loaded (${(err as Error).message})`, { cause: err });
  }
}

/** "vendor architecture (device)" from whichever fields the adapter fills in. */
export function describeAdapter(info: DawnAdapterInfo | undefined): string {
  const parts = [info?.vendor, info?.architecture, info?.device].filter((p): p is string => typeof p === 'string' && p !== '');
  const described = info?.description ? `${parts.join(' ')}${parts.length > 0 ? ', ' : ''}${info.description}` : parts.join(' ');
  return described === '' ? 'an unnamed adapter' : described;
}

async function adapterInfo(adapter: DawnAdapter): Promise<DawnAdapterInfo | undefined> {
  if (adapter.info) return adapter.info;
  return adapter.requestAdapterInfo ? await adapter.requestAdapterInfo().catch(() => undefined) : undefined;
}

// Node has no OffscreenCanvas, through which tfjs-backend-webgpu 4.22 reads GPU tensors synchronously:
// make dataSync()/arraySync() fail with a message that says what to do instead.
function explainSyncReads(): void {
  const backend = tf.findBackend('webgpu') as unknown as { readSync(dataId: object): unknown; hasReadSyncWarned?: boolean } | null;
  if (syncReadsExplained || !backend || 'OffscreenCanvas' in globalThis) return;
  syncReadsExplained = true;
  const readSync = backend.readSync.bind(backend);
  // Its one-time console warning about slow synchronous reads would precede our error.
  backend.hasReadSyncWarned = true;
  backend.readSync = (dataId: object) => {
    try {
      return readSync(dataId);
    } catch (err) {
      if (!(err instanceof ReferenceError)) throw err;
      throw new BackendError(
        'the webgpu backend cannot read a GPU tensor synchronously under Node (dataSync, arraySync); code that runs on it must ' +
        'read with await data(). The training step still reads synchronously: train with --backend wasm or tensorflow-gpu (see docs/backends.md)',
        { cause: err },
      );
    }
  };
}

/**
 * Loads Dawn and tfjs-backend-webgpu, finds a GPU adapter and makes 'webgpu' the active tfjs backend.
 * Throws BackendError when a package is missing or Dawn finds no adapter; in that case nothing of
 * Dawn stays referenced (a live Dawn instance keeps Node's event loop running).
 * @example
 * const { description } = await activateWebGpu();
 */
export async function activateWebGpu(flags: string[] = dawnFlags()): Promise<{ name: 'webgpu'; description: string }> {
  if (activeDescription === undefined) {
    checkInstalled();
    const dawn = await importOptional<DawnModule>('webgpu');
    const gpu = dawn.create(flags);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) throw new BackendError(NO_ADAPTER_MESSAGE);
    // tfjs-backend-webgpu uses the browser's globals (GPUBufferUsage, GPUMapMode, …) and registers
    // its backend on import only when navigator.gpu exists.
    for (const [key, value] of Object.entries(dawn.globals)) {
      if (!(key in globalThis)) Object.defineProperty(globalThis, key, { value, configurable: true, writable: true });
    }
    const g = globalThis as { navigator?: { gpu?: DawnGpu } };
    if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    await importOptional('@tensorflow/tfjs-backend-webgpu');
    if (tf.findBackendFactory('webgpu') === null) {
      throw new BackendError('@tensorflow/tfjs-backend-webgpu was loaded before navigator.gpu existed and registered no backend');
    }
    activeDescription = `WebGPU via Dawn on ${describeAdapter(await adapterInfo(adapter))}`;
  }
  if (!(await tf.setBackend('webgpu'))) throw new BackendError('the webgpu backend failed to initialise (Dawn could not create a device)');
  explainSyncReads();
  return { name: 'webgpu', description: activeDescription };
}
