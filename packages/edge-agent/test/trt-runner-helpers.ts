// Shared pieces of the trt-runner tests: the stand-in's argv, a private shm directory, small models.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The stand-in runner's source. */
export const STANDIN = fileURLToPath(new URL('../src/runtime/trt-runner/standin-runner.ts', import.meta.url));

/** argv that runs the stand-in (through tsx, as the other process tests run TypeScript children). */
export function standinCommand(shmDir: string, ...extra: string[]): string[] {
  return [process.execPath, '--conditions=source', '--import', 'tsx', STANDIN, '--shm-dir', shmDir, ...extra];
}

/** A private directory in /dev/shm (tmpfs) when there is one, else under the temp dir; call `remove` after. */
export async function shmTempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = await mkdtemp(join(base, 'kd-trt-test-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Polls `cond` every 20 ms until it holds or `ms` pass (then throws naming `what`). */
export async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
