// examples/adapt-demo.ts, the fleet half of `npm run demo:adapt` (issue 16), run as a user runs it: its own process,
// with kd-fleet on the embedded broker and a real kd-agent child, on toy models (64 px, one epoch, 12 frames) made the
// way the agent's adaptation tests make them. It must drive the job through the fleet's API to an activated
// adaptation, print the table, and leave no agent process behind; missing inputs are a clear error.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, writeKeyPair } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeStudentPackage, makeTeacherPackage, writeFrames } from '../../edge-agent/test/agent-adapt-fixtures.js';
import { labelledVal } from '../../trainer/test/adapt-fixtures.js';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
let root: string;
let teacherOnnx: string;

/** Runs the demo script; its exit code and output. */
function demo(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(repo, 'examples/adapt-demo.ts'), ...args],
      { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (out += String(d)));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-adapt-demo-'));
  // The layout examples/adapt-demo.sh leaves in runs/demo-adapt.
  const key = generateKeyPair();
  await mkdir(join(root, 'keys'), { recursive: true });
  await writeKeyPair(key, { privateKeyPath: join(root, 'keys/fleet.key'), publicKeyPath: join(root, 'keys/fleet.pub') });
  const student = await makeStudentPackage(join(root, 'work'), 'shapes', '1.0.0', join(root, 'keys/fleet.key'));
  const teacher = await makeTeacherPackage(join(root, 'work'), 'shapes-teacher', '1.0.0', key.privateKeyPem);
  await mkdir(join(root, 'packages'), { recursive: true });
  await copyFile(student.tar, join(root, 'packages/shapes-1.0.0.tar'));
  await copyFile(teacher.tar, join(root, 'packages/shapes-teacher-1.0.0.tar'));
  await mkdir(join(root, 'runs/student/weights'), { recursive: true });
  await copyFile(join(student.dir, 'weights/model.kdw'), join(root, 'runs/student/weights/best.kdw'));
  teacherOnnx = join(teacher.dir, 'model.onnx');
  await writeFrames(join(root, 'work'), join(root, 'data/b-camera/images/train'), 12);
  // Labelled sets for kd-trainer val: the toy classes, 3 images, named from where they are.
  const val = await labelledVal(join(root, 'work'), 3);
  const yaml = (await readFile(val, 'utf8')).replace(/^path: .*$/m, `path: ${dirname(val)}`);
  for (const d of ['a', 'b-holdout']) {
    await mkdir(join(root, 'data', d), { recursive: true });
    await writeFile(join(root, 'data', d, 'data.yaml'), yaml);
  }
}, 300_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('examples/adapt-demo.ts', () => {
  it('adapts a real kd-agent\'s student through the fleet\'s API, follows the job, prints the table and stops the agent', async () => {
    const { code, out } = await demo([
      '--root', root, '--epochs', '1', '--frames', '12', '--min-gain=-1', '--imgsz', '64', '--fps', '20', '--teacher-weights', teacherOnnx, '--timeout', '500',
    ]);
    expect(code, out).toBe(0);
    // The job's states in the order the device went through them, each printed once as it changed.
    const order = ['labelling', 'training: epoch 1/1', 'evaluating', 'packaging', 'activating', 'on cam-01: succeeded'];
    const at = order.map((s) => out.indexOf(s));
    expect(at.every((i) => i >= 0), out).toBe(true);
    expect([...at].sort((x, y) => x - y)).toEqual(at);
    expect(out).toMatch(/^serving 1\.0\.0\s+\d\.\d{3}/m);
    expect(out).toMatch(/^adapted 1\.0\.0\+adapt\.cam-01\.1\s+\d\.\d{3}/m);
    expect(out).toMatch(/^teacher\s+—/m);
    expect(out).toContain('accepted and activated:');
    expect(out).toContain('now active on cam-01: shapes@1.0.0+adapt.cam-01.1');
    expect(out).toMatch(/serving fps: \d+\.\d before the job, \d+\.\d during it/);
    expect(out).toMatch(/b \(labelled, never on the device\) mAP50-95: student \d\.\d{3} → adapted \d\.\d{3}/);
    // The agent ran as its own process and is gone once the demo ends.
    const pid = Number(/a real kd-agent \(pid (\d+)\)/.exec(out)?.[1]);
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
    expect(out).toContain('fleet and agent stopped');
  }, 600_000);

  it('names what is missing and how to make it', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'kd-adapt-demo-empty-'));
    try {
      const { code, out } = await demo(['--root', empty]);
      expect(code).toBe(2);
      expect(out).toContain(`missing ${join(empty, 'keys/fleet.pub')}`);
      expect(out).toContain('npm run demo:adapt');
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  }, 60_000);
});
