import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The kd-trainer entry point from sources. */
export const KD_TRAINER_BIN = fileURLToPath(new URL('../src/bin/kd-trainer.ts', import.meta.url));

/** Runs the real kd-trainer CLI from sources in a new process; resolves with its exit code and output. */
export async function runCli(args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--conditions=source', '--import', 'tsx', KD_TRAINER_BIN, ...args], { timeout: timeoutMs });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}
