// One trainer per job folder, and no trainer outliving the agent that started it (issue 16, "a kill at random points
// of a job resumes or fails cleanly"): the job folder's lock and the parent watch, with real processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ADAPT_SCHEMA } from '../src/adapt/adapt-schema.js';
import { acquireJobLock, JOB_LOCK_FILE, lockOwnerAlive, processStartTime, readJobLock } from '../src/adapt/job-lock.js';
import { parentPidFromEnv, watchParent } from '../src/adapt/parent-watch.js';
import { runAdapt } from '../src/adapt/run-adapt.js';
import { selectBackend } from '../src/backend/select.js';
import { resolveOptions } from '../src/config.js';
import { silentLogger } from '../src/util/logger.js';
import { writeCapture, synthFrames, writeStudent, writeTeacher } from './adapt-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'kd-adapt-lock-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

/** A real process that idles until killed. */
async function idler(): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  children.push(c);
  await once(c, 'spawn');
  return c;
}

function writeLock(dir: string, owner: object): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, JOB_LOCK_FILE), JSON.stringify({ since: '2026-01-01T00:00:00Z', by: 'test', ...owner }));
}

describe('the job folder lock', () => {
  it('is taken with this process\'s pid and start time, and released', async () => {
    const dir = join(root, 'free');
    mkdirSync(dir);
    const lock = await acquireJobLock(dir);
    expect(await readJobLock(dir)).toMatchObject({ pid: process.pid, startTime: processStartTime(process.pid) });
    expect(processStartTime(process.pid)).toMatch(/^\d+$/);
    // A second take in the same process is refused too: one run per folder.
    await expect(acquireJobLock(dir)).rejects.toMatchObject({ code: 'ADAPT_JOB_LOCKED', message: expect.stringMatching(/this process/) });
    await lock.release();
    expect(existsSync(join(dir, JOB_LOCK_FILE))).toBe(false);
  });

  it('refuses while a live owner holds it, naming the pid; waits for it when asked', async () => {
    const owner = await idler();
    const dir = join(root, 'live');
    writeLock(dir, { pid: owner.pid, startTime: processStartTime(owner.pid!) });
    expect(lockOwnerAlive((await readJobLock(dir))!)).toBe(true);
    await expect(acquireJobLock(dir)).rejects.toMatchObject({ code: 'ADAPT_JOB_LOCKED', message: expect.stringContaining(`process ${owner.pid} (test`) });
    expect((await readJobLock(dir))!.pid).toBe(owner.pid);

    let waitedFor: number | undefined;
    const taking = acquireJobLock(dir, { waitMs: 60_000, pollMs: 50, onWait: (o) => { waitedFor = o.pid; owner.kill('SIGKILL'); } });
    const lock = await taking;
    expect(waitedFor).toBe(owner.pid);
    expect((await readJobLock(dir))!.pid).toBe(process.pid);
    await lock.release();
  });

  it('replaces the lock of a dead owner, of a reused pid, and a torn one', async () => {
    const gone = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await once(gone, 'exit');
    const dead = join(root, 'dead');
    writeLock(dead, { pid: gone.pid, startTime: '12345' });
    expect(lockOwnerAlive((await readJobLock(dead))!)).toBe(false);
    await (await acquireJobLock(dead)).release();

    // The pid runs, but it is a process started at another time than the lock's owner: the kernel reused the pid.
    const other = await idler();
    const reused = join(root, 'reused');
    writeLock(reused, { pid: other.pid, startTime: String(Number(processStartTime(other.pid!)) - 1) });
    expect(lockOwnerAlive((await readJobLock(reused))!)).toBe(false);
    const lock = await acquireJobLock(reused);
    expect((await readJobLock(reused))!.pid).toBe(process.pid);
    await lock.release();

    const torn = join(root, 'torn');
    mkdirSync(torn);
    writeFileSync(join(torn, JOB_LOCK_FILE), '{"pid": 12');
    await (await acquireJobLock(torn)).release();
    expect(existsSync(join(torn, JOB_LOCK_FILE))).toBe(false);
  });

  it('release leaves a lock another process has taken over alone', async () => {
    const dir = join(root, 'taken-over');
    mkdirSync(dir);
    const lock = await acquireJobLock(dir);
    const other = await idler();
    writeLock(dir, { pid: other.pid, startTime: processStartTime(other.pid!) });
    await lock.release();
    expect((await readJobLock(dir))!.pid).toBe(other.pid);
  });

  it('runAdapt refuses a job folder a live process holds, before it touches anything', async () => {
    await selectBackend('wasm', silentLogger);
    const teacher = writeTeacher(join(root, 'teacher.onnx'));
    const student = await writeStudent(join(root, 'student.kdw'));
    const capture = join(root, 'capture');
    writeCapture(capture, await synthFrames(root, 12, 8));
    const out = join(root, 'job');
    const owner = await idler();
    writeLock(out, { pid: owner.pid, startTime: processStartTime(owner.pid!) });
    const { config } = resolveOptions(ADAPT_SCHEMA, [{ frames: capture, teacher, weights: student, out, imgsz: 64, epochs: 1, backend: 'wasm', workers: 0 }]);
    await expect(runAdapt(config)).rejects.toMatchObject({ code: 'ADAPT_JOB_LOCKED', message: expect.stringContaining(String(owner.pid)) });
    expect(existsSync(join(out, 'data'))).toBe(false);
    expect((await readJobLock(out))!.pid).toBe(owner.pid);
  }, 120_000);
});

describe('the parent watch (KD_PARENT_PID)', () => {
  it('reads the pid from the environment', () => {
    expect(parentPidFromEnv({ KD_PARENT_PID: '4242' })).toBe(4242);
    expect(parentPidFromEnv({ KD_PARENT_PID: 'x' })).toBeUndefined();
    expect(parentPidFromEnv({ KD_PARENT_PID: '0' })).toBeUndefined();
    expect(parentPidFromEnv({})).toBeUndefined();
  });

  it('a direct child notices re-parenting; any child notices a reused pid', () => {
    let ppid = 4242;
    const direct = watchParent({ pid: 4242, ppid: () => ppid, onGone: () => undefined, readProc: () => { throw new Error('no /proc'); } });
    // Started as the direct child of 4242: re-parenting says it died.
    ppid = 1;
    expect(direct.check()).toMatch(/its parent process 4242 exited \(re-parented to 1\)/);
    direct.stop();

    // Watching a live process (this one) that is not the direct parent: its pid alone, then its start time.
    let start = '100';
    const stat = (): string => `${process.pid} (node (x)) S ${Array.from({ length: 18 }, () => '0').join(' ')} ${start} 0 0`;
    const byPid = watchParent({ pid: process.pid, ppid: () => 1, onGone: () => undefined, readProc: stat });
    expect(byPid.check()).toBeUndefined();
    start = '200';
    expect(byPid.check()).toMatch(new RegExp(`process ${process.pid} \\(KD_PARENT_PID\\) is gone`));
    byPid.stop();
  });

  it('a real child stops when its parent is killed with SIGKILL', async () => {
    const watchModule = fileURLToPath(new URL('../src/adapt/parent-watch.ts', import.meta.url));
    const note = join(root, 'gone.txt');
    // The child: watches KD_PARENT_PID every 100 ms and writes why it stopped.
    const child = `
      import { writeFileSync } from 'node:fs';
      import { parentPidFromEnv, watchParent } from ${JSON.stringify(watchModule)};
      watchParent({ pid: parentPidFromEnv(), intervalMs: 100, onGone: (why) => { writeFileSync(${JSON.stringify(note)}, why); process.exit(0); } });
      setInterval(() => {}, 1000);
      process.stdout.write('watching\\n');`;
    // The parent: starts the child with its own pid in KD_PARENT_PID, says the child's pid, and idles.
    const parentScript = `
      const { spawn } = require('node:child_process');
      const c = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', ${JSON.stringify(child)}],
        { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, KD_PARENT_PID: String(process.pid) } });
      process.stdout.write('child ' + c.pid + '\\n');
      setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['-e', parentScript], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(parent);
    let out = '';
    await new Promise<void>((resolve) => parent.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('watching')) resolve(); }));
    const childPid = Number(/child (\d+)/.exec(out)![1]);
    expect(existsSync(`/proc/${childPid}`)).toBe(true);
    parent.kill('SIGKILL');
    for (let i = 0; i < 600 && existsSync(`/proc/${childPid}`) && !existsSync(note); i++) await new Promise((r) => setTimeout(r, 100));
    expect(readFileSync(note, 'utf8')).toMatch(new RegExp(`its parent process ${parent.pid} exited`));
  }, 120_000);
});
