import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** Options of {@link detectGpuName}. */
export interface DetectGpuNameOptions {
  /** Device-tree model file of a Jetson (default `/proc/device-tree/model`). */
  deviceTreeModel?: string;
  /** nvidia-smi executable (default `nvidia-smi` on PATH). */
  nvidiaSmi?: string;
}

function nvidiaSmiName(exe: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(exe, ['--query-gpu=name', '--format=csv,noheader'], { timeout: 10_000, shell: false }, (err, stdout) => {
      const first = err ? undefined : stdout.split('\n')[0]?.trim();
      resolve(first ? first : undefined);
    });
  });
}

/**
 * The GPU's name for the engine cache key: nvidia-smi's first GPU on a workstation, the device-tree model on a
 * Jetson (which has no nvidia-smi), else undefined.
 */
export async function detectGpuName(options: DetectGpuNameOptions = {}): Promise<string | undefined> {
  const smi = await nvidiaSmiName(options.nvidiaSmi ?? 'nvidia-smi');
  if (smi !== undefined) return smi;
  try {
    // The device-tree string ends with a NUL.
    const model = (await readFile(options.deviceTreeModel ?? '/proc/device-tree/model', 'utf8')).replace(/\0/g, '').trim();
    return model === '' ? undefined : model;
  } catch {
    return undefined;
  }
}
