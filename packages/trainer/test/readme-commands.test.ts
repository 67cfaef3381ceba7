import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'packages/trainer/src/bin/kd-trainer.ts');
// The README's alias imports tsx from the repository; from another folder it is named by its file.
const TSX = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

/** The `kd-trainer …` lines of the README's "kd-trainer at a glance" block, continuation lines joined, comments cut. */
function readmeCommands(): string[][] {
  const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /## kd-trainer at a glance\s+```bash\n([\s\S]*?)```/.exec(text)?.[1];
  if (!block) throw new Error('README: no kd-trainer block');
  return block.replace(/\\\n\s*/g, ' ').split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.startsWith('kd-trainer '))
    .map((l) => l.split(/\s+/).slice(1));
}

/** What makes a README command small enough for a test, appended after its own flags (the last value wins). */
function small(args: string[]): string[] {
  const [cmd, sub] = args;
  if (cmd === 'data' && sub === 'synth') return ['--train', '24', '--val', '8'];
  if (cmd === 'train' || cmd === 'distill') return ['--epochs', '1', '--workers', '0'];
  if (cmd === 'classify' && (sub === 'train' || sub === 'distill')) return ['--epochs', '1'];
  if (cmd === 'export') return ['--bench-runs', '2', '--calib-images', '8', '--sensitivity-images', '2'];
  return [];
}

// Every command the README prints, run in order in an empty folder as a new user would (with the two files
// the README says stand for the user's own: my-run.yaml, and an ultralytics yolov5n.pt).
describe('README: kd-trainer at a glance', () => {
  it('runs every command, in order, from a fresh folder', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'kd-readme-'));
    symlinkSync(join(ROOT, 'examples'), join(cwd, 'examples'));
    copyFileSync(join(ROOT, 'packages/trainer/test/fixtures/ultralytics/yolov5n-nc3-v7.pt'), join(cwd, 'yolov5n.pt'));
    writeFileSync(join(cwd, 'my-run.yaml'), 'data: datasets/shapes/data.yaml\nmodel: yolov5n\nimgsz: 128\nbatch_size: 16\n');
    const commands = readmeCommands();
    expect(commands.length).toBeGreaterThanOrEqual(15);
    for (const args of commands) {
      const argv = [...args, ...small(args)];
      const r = await promisify(execFile)(process.execPath, ['--conditions=source', '--import', TSX, BIN, ...argv], { cwd, timeout: 300_000, maxBuffer: 1 << 26 })
        .catch((e: { code: number; stdout: string; stderr: string }) => e);
      expect(r, `kd-trainer ${argv.join(' ')}: ${'stderr' in r ? r.stderr : ''}`).not.toHaveProperty('code');
    }
    for (const f of ['runs/train/exp/weights/best.kdw', 'runs/train/exp3/weights/best.kdw', 'runs/val/exp/confusion_matrix.png', 'runs/predict/exp',
      'yolov5n.kdw', 'runs/train/exp/weights/export/model.int8.onnx', 'runs/train/exp/weights/shapes-1.0.0.tar', 'keys/fleet.pub',
      'runs/train-cls/exp/weights/best.kdw', 'runs/train-cls/exp/results.png']) {
      expect(existsSync(join(cwd, f)), f).toBe(true);
    }
  }, 1_200_000);
});
