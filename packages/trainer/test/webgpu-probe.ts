import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

/**
 * The adapter Dawn finds here with these flags ("vendor architecture"), or undefined: asked in a child process, so a
 * test file neither loads Dawn nor shows its driver messages unless it means to.
 */
export async function webgpuAdapter(flags: string[] = []): Promise<string | undefined> {
  const code = `
    const { create } = await import('webgpu');
    const adapter = await create(${JSON.stringify(flags)}).requestAdapter({ powerPreference: 'high-performance' });
    const i = adapter?.info ?? {};
    console.log(adapter ? JSON.stringify([i.vendor, i.architecture, i.device].filter(Boolean).join(' ') || 'unnamed') : '');`;
  try {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: PACKAGE_DIR, timeout: 60_000 });
    const line = stdout.trim();
    return line === '' ? undefined : (JSON.parse(line) as string);
  } catch {
    return undefined;
  }
}

/** Why a test that needs a WebGPU adapter is skipped on a machine without one. */
export const NO_ADAPTER_REASON = 'no WebGPU adapter: Dawn found no GPU with a Vulkan driver';
