// What keeps an adaptation job safe before and across restarts, each with real files and processes: the recipe's
// precedence (command > package > configuration > trainer), the disk check at admission, and the job folder's lock
// as the agent reads it to stop a trainer an earlier agent process left running.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adaptChildEnv } from '../src/adapt/adapt-child.js';
import { checkAdaptDisk, estimateJobBytes } from '../src/adapt/adapt-disk.js';
import { resolveAdaptRecipe } from '../src/adapt/adapt-recipe.js';
import { JOB_LOCK_FILE, procStat, processAlive, readJobLock, stopProcess } from '../src/adapt/job-lock.js';
import { validateAgentConfig } from '../src/config/agent-config.js';

const root = mkdtempSync(join(tmpdir(), 'kd-agent-adapt-guards-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

describe('the recipe: command > package > agent configuration > kd-trainer', () => {
  it('takes each key from the first layer that sets it, and says where it came from', () => {
    const r = resolveAdaptRecipe({
      command: { epochs: 3, minGain: -1 },
      package: { epochs: 5, lr0: 0.001, holdout: 0.3, memoryBudgetMb: 900 },
      config: { epochs: 10, lr0: 0.002, holdout: 0.2, pseudoConf: 0.4, maxLoss: 0.05 },
      inputSize: 320,
    });
    expect(r.recipe).toEqual({ epochs: 3, imgsz: 320, lr0: 0.001, pseudoConf: 0.4, holdout: 0.3, memoryBudgetMb: 900, minGain: -1, maxLoss: 0.05 });
    expect(r.from).toEqual({ epochs: 'command', imgsz: 'model', lr0: 'package', pseudoConf: 'config', holdout: 'package', memoryBudgetMb: 'package', minGain: 'command', maxLoss: 'config' });
    // Nothing set anywhere: kd-trainer's default, not passed (timeBudgetSec here).
    expect('timeBudgetSec' in r.recipe).toBe(false);
  });

  it('the image size: the command\'s, else the package\'s, else the configuration\'s, else the model\'s input', () => {
    expect(resolveAdaptRecipe({ command: { imgsz: 96 }, package: { imgsz: 128 }, config: { imgsz: 160 }, inputSize: 64 }).from.imgsz).toBe('command');
    expect(resolveAdaptRecipe({ package: { imgsz: 128 }, config: { imgsz: 160 }, inputSize: 64 }).recipe.imgsz).toBe(128);
    expect(resolveAdaptRecipe({ config: { imgsz: 160 }, inputSize: 64 }).recipe.imgsz).toBe(160);
    expect(resolveAdaptRecipe({ config: {}, inputSize: 64 })).toEqual({ recipe: { imgsz: 64 }, from: { imgsz: 'model' } });
    expect(resolveAdaptRecipe({ config: {} })).toEqual({ recipe: {}, from: {} });
  });

  it('reads the agent\'s adapt: section as the configuration layer, and ignores its other keys', () => {
    const cfg = validateAgentConfig({ keys: ['/k.pub'], adapt: { epochs: 2, lr0: 0.01, nice: 5, threads: 2 } }).adapt;
    const r = resolveAdaptRecipe({ command: { lr0: 0.005 }, package: undefined, config: cfg });
    expect(r.recipe).toEqual({ epochs: 2, lr0: 0.005 });
    expect(r.from).toEqual({ epochs: 'config', lr0: 'command' });
  });
});

describe('the disk check at admission (AGENT_ADAPT_DISK)', () => {
  const MiB = 1024 * 1024;
  const files = (dir: string, sizes: number[]): string => {
    mkdirSync(dir, { recursive: true });
    sizes.forEach((n, i) => writeFileSync(join(dir, `f${i}.bin`), Buffer.alloc(n)));
    return dir;
  };

  it('estimates the base\'s weights, val, replay, the frames and 3 × the weights', async () => {
    const w = join(root, 'pkg', 'model.kdw');
    mkdirSync(join(root, 'pkg'), { recursive: true });
    writeFileSync(w, Buffer.alloc(1000));
    const e = await estimateJobBytes({
      weights: w, val: [files(join(root, 'pkg', 'val', 'images'), [300, 200]), files(join(root, 'pkg', 'val', 'labels'), [10])],
      replay: files(join(root, 'pkg', 'replay'), [400, 400, 400]), frames: files(join(root, 'capture', 'nested'), [5000, 5000]).replace(/\/nested$/, ''),
    });
    expect(e).toEqual({ weights: 1000, val: 510, replay: 1200, frames: 10_000, checkpoints: 3000, total: 15_710 });
    // Missing parts count as nothing.
    expect((await estimateJobBytes({ weights: w })).total).toBe(4000);
  });

  it('refuses when the free space less the estimate is under the reserve, naming the numbers; passes otherwise', async () => {
    const estimate = { weights: 10 * MiB, val: 1 * MiB, replay: 4 * MiB, frames: 20 * MiB, checkpoints: 30 * MiB, total: 65 * MiB };
    const statfs = async (): Promise<{ bavail: bigint; bsize: bigint }> => ({ bavail: 32_000n, bsize: 4096n }); // 125 MiB
    expect(await checkAdaptDisk({ dir: '/data/adapt', estimate, reserveBytes: 60 * MiB, statfs })).toBe(32_000 * 4096);
    let err: (Error & { code?: string }) | undefined;
    await checkAdaptDisk({ dir: '/data/adapt', estimate, reserveBytes: 64 * MiB, statfs }).catch((e: Error) => { err = e; });
    expect(err?.code).toBe('AGENT_ADAPT_DISK');
    expect(err?.message).toBe(
      'not enough disk for the job: /data/adapt has 125.0 MiB free (131072000 bytes); the job needs about 65.0 MiB (68157440 bytes: weights 10.0 MiB, val 1.0 MiB, ' +
        'replay 4.0 MiB, frames 20.0 MiB, checkpoints and exports 3 × weights 30.0 MiB), which would leave 60.0 MiB, under limits.reserveDiskBytes 64.0 MiB (67108864 bytes); ' +
        'free some space or lower the capture\'s maxBytes',
    );
    // The real file system answers too (this test's folder has room for a tiny job).
    expect(await checkAdaptDisk({ dir: root, estimate: { ...estimate, total: 1 }, reserveBytes: 0 })).toBeGreaterThan(0);
  });
});

describe('the job folder lock as the agent reads it', () => {
  /** A real process running `script`, once it has run it (its signal handlers are in place). */
  async function idler(script = ''): Promise<ChildProcess> {
    const c = spawn(process.execPath, ['-e', `${script}; setInterval(() => {}, 1000); process.stdout.write('ready')`], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(c);
    await once(c.stdout!, 'data');
    return c;
  }
  const lockOf = (dir: string, o: object): void => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, JOB_LOCK_FILE), JSON.stringify(o));
  };

  it('a live owner is alive; a dead one, a reused pid and a torn lock are not', async () => {
    const live = await idler();
    const start = (await procStat(live.pid!))!.startTime;
    lockOf(join(root, 'j-live'), { pid: live.pid, startTime: start, since: 'x', by: 'kd-trainer adapt' });
    const owner = (await readJobLock(join(root, 'j-live')))!;
    expect(owner).toEqual({ pid: live.pid, startTime: start, since: 'x', by: 'kd-trainer adapt' });
    expect(await processAlive(owner.pid, owner.startTime)).toBe(true);
    // The same pid with another start time: the kernel gave the pid to a later process.
    expect(await processAlive(owner.pid, String(Number(start) - 5))).toBe(false);

    const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await once(dead, 'exit');
    expect(await processAlive(dead.pid!, null)).toBe(false);

    writeFileSync(join(root, 'j-live', JOB_LOCK_FILE), '{"pid":');
    expect(await readJobLock(join(root, 'j-live'))).toBeUndefined();
    expect(await readJobLock(join(root, 'j-none'))).toBeUndefined();
  });

  it('stopProcess: SIGTERM stops a trainer that saves and exits; SIGKILL after the grace one that does not; a reused pid is left alone', async () => {
    const polite = await idler("process.on('SIGTERM', () => setTimeout(() => process.exit(130), 50))");
    expect(await stopProcess(polite.pid!, { startTime: (await procStat(polite.pid!))!.startTime, graceMs: 30_000, pollMs: 20 })).toBe('terminated');
    expect(polite.exitCode ?? (await once(polite, 'exit'))[0]).toBe(130);

    const stubborn = await idler("process.on('SIGTERM', () => {})");
    expect(await stopProcess(stubborn.pid!, { startTime: null, graceMs: 300, pollMs: 20 })).toBe('killed');

    const bystander = await idler();
    const start = (await procStat(bystander.pid!))!.startTime;
    expect(await stopProcess(bystander.pid!, { startTime: String(Number(start) + 1), graceMs: 100 })).toBe('gone');
    expect(bystander.exitCode).toBeNull();
    expect(await processAlive(bystander.pid!, start)).toBe(true);
  });

  it('the child learns the agent\'s pid (KD_PARENT_PID), so it can stop when the agent is gone', () => {
    expect(adaptChildEnv(1, { PATH: '/bin' })).toMatchObject({ KD_PARENT_PID: String(process.pid), PATH: '/bin' });
    expect(adaptChildEnv(1, {}, 4242).KD_PARENT_PID).toBe('4242');
  });
});
