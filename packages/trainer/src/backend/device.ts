import { BackendError } from '../errors.js';
import type { BackendName } from './select.js';

/**
 * The backend an ultralytics `--device` means: `cpu` → the CPU path (WebAssembly unless a CPU backend
 * was named), `0` or `0,1` → TensorFlow with CUDA, its GPUs made visible through CUDA_VISIBLE_DEVICES
 * (set before the backend loads), or WebGPU when `--backend webgpu` (Dawn picks the adapter). A device
 * that contradicts `--backend` is an error naming both.
 * @example backendForDevice('0', 'auto') // 'tensorflow-gpu'
 */
export function backendForDevice(device: string, backend: BackendName, env: NodeJS.ProcessEnv = process.env): BackendName {
  const d = device.trim().toLowerCase();
  if (d === '') return backend;
  if (d === 'cpu') {
    if (backend === 'tensorflow-gpu' || backend === 'webgpu') throw new BackendError(`--device cpu contradicts --backend ${backend}`);
    return backend === 'auto' ? 'wasm' : backend;
  }
  if (!/^\d+(,\d+)*$/.test(d)) throw new BackendError(`--device '${device}': expected cpu, a CUDA index (0) or a list (0,1)`);
  if (backend === 'webgpu') return backend;
  if (backend !== 'auto' && backend !== 'tensorflow-gpu') {
    throw new BackendError(`--device ${d} asks for a GPU but --backend ${backend} runs on the CPU: use --backend tensorflow-gpu (needs @tensorflow/tfjs-node-gpu and CUDA), --backend webgpu or --device cpu`);
  }
  env.CUDA_VISIBLE_DEVICES = d;
  return 'tensorflow-gpu';
}
