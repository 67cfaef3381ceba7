// The adaptation job lock's contract, shared by kd-trainer (takes it) and kd-agent (reads it): /proc/<pid>/stat
// lines as proc(5) writes them, the lock file's JSON, and the liveness check, with real files and processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  JOB_LOCK_FILE, parseJobLock, parseProcStat, processAlive, processAliveSync, procStat, procStatSync, readJobLock,
} from '../src/util/job-lock.js';

const root = mkdtempSync(join(tmpdir(), 'kd-core-job-lock-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

/** A stat line as proc(5) writes it: pid, (comm), state, fields 4..21, starttime (field 22), then the rest up to field 52. */
const statLine = (comm: string, state: string, startTime: string): string =>
  `4242 (${comm}) ${state} ${Array.from({ length: 18 }, (_, i) => String(i + 4)).join(' ')} ${startTime} ${Array.from({ length: 30 }, () => '0').join(' ')}\n`;

describe('parseProcStat', () => {
  it('reads the state (field 3) and the start time (field 22)', () => {
    expect(parseProcStat(statLine('node', 'S', '7741'))).toEqual({ state: 'S', startTime: '7741' });
    expect(parseProcStat(statLine('node', 'Z', '12'))).toEqual({ state: 'Z', startTime: '12' });
  });

  it('counts from the last \')\': a command name may hold spaces and parentheses', () => {
    expect(parseProcStat(statLine('kd trainer (adapt) x', 'R', '99'))).toEqual({ state: 'R', startTime: '99' });
    expect(parseProcStat(statLine(') 1 2 3 )', 'D', '5'))).toEqual({ state: 'D', startTime: '5' });
    expect(parseProcStat(statLine('', 'S', '6'))).toEqual({ state: 'S', startTime: '6' });
  });

  it('is undefined for a line without the command name or with fewer than 22 fields', () => {
    expect(parseProcStat('')).toBeUndefined();
    expect(parseProcStat('4242 node S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22')).toBeUndefined();
    // Fields up to 21 only: no start time.
    expect(parseProcStat(`4242 (node) S ${Array.from({ length: 18 }, () => '0').join(' ')}\n`)).toBeUndefined();
    expect(parseProcStat('4242 (node)')).toBeUndefined();
    expect(parseProcStat('4242 (node) ')).toBeUndefined();
    // Exactly 22 fields: the start time is the last one, without the line's end.
    expect(parseProcStat(`4242 (node) S ${Array.from({ length: 18 }, () => '0').join(' ')} 31\n`)).toEqual({ state: 'S', startTime: '31' });
  });
});

describe('parseJobLock', () => {
  it('reads a lock as kd-trainer writes it', () => {
    const owner = { pid: 4242, startTime: '7741', since: '2026-01-01T00:00:00.000Z', by: 'kd-trainer adapt' };
    expect(parseJobLock(`${JSON.stringify(owner)}\n`)).toEqual(owner);
    expect(parseJobLock(JSON.stringify({ ...owner, startTime: null }))).toEqual({ ...owner, startTime: null });
  });

  it('is undefined for a torn write or one that is not an object', () => {
    for (const text of ['', '{"pid": 12', '{"pid":4242,"startTime":"7741","since":"2026-', 'null', '4242', '"lock"', '[]']) {
      expect(parseJobLock(text), text).toBeUndefined();
    }
  });

  it('is undefined for a pid that is not a positive integer or a start time that is not a string or null', () => {
    for (const pid of [0, -1, 1.5, '4242', null, 2 ** 53, undefined]) {
      expect(parseJobLock(JSON.stringify({ pid, startTime: '1', since: 's', by: 'b' })), String(pid)).toBeUndefined();
    }
    for (const startTime of [7741, true, {}, undefined]) {
      expect(parseJobLock(JSON.stringify({ pid: 4242, startTime, since: 's', by: 'b' })), String(startTime)).toBeUndefined();
    }
  });

  it('reads since and by, for people only, as empty when missing or not strings', () => {
    expect(parseJobLock('{"pid":4242,"startTime":"1"}')).toEqual({ pid: 4242, startTime: '1', since: '', by: '' });
    expect(parseJobLock('{"pid":4242,"startTime":null,"since":5,"by":{"x":1}}')).toEqual({ pid: 4242, startTime: null, since: '', by: '' });
  });
});

describe('the lock file and the /proc reads', () => {
  it('readJobLock reads <dir>/lock; no file or a torn one is undefined', async () => {
    const dir = join(root, 'job');
    mkdirSync(dir);
    expect(JOB_LOCK_FILE).toBe('lock');
    expect(await readJobLock(dir)).toBeUndefined();
    writeFileSync(join(dir, JOB_LOCK_FILE), JSON.stringify({ pid: 7, startTime: null, since: 'x', by: 'y' }));
    expect(await readJobLock(dir)).toEqual({ pid: 7, startTime: null, since: 'x', by: 'y' });
    writeFileSync(join(dir, JOB_LOCK_FILE), '{"pid":');
    expect(await readJobLock(dir)).toBeUndefined();
  });

  it('procStat and procStatSync read this process; a gone one or a failing read is undefined', async () => {
    const own = procStatSync(process.pid);
    expect(own).toMatchObject({ state: expect.stringMatching(/^[RS]$/), startTime: expect.stringMatching(/^\d+$/) });
    // The state may change between two reads (R while running, S while waiting); the start time may not.
    expect((await procStat(process.pid))?.startTime).toBe(own!.startTime);
    const fail = (): never => { throw new Error('no /proc'); };
    expect(procStatSync(process.pid, fail)).toBeUndefined();
    expect(await procStat(process.pid, async () => fail())).toBeUndefined();
    expect(procStatSync(process.pid, () => statLine('x', 'S', '3'))).toEqual({ state: 'S', startTime: '3' });
  });

  it('processAlive: a live process started then; not a dead one, a reused pid, a zombie, or pid 0', async () => {
    const live = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    children.push(live);
    await once(live, 'spawn');
    const start = procStatSync(live.pid!)!.startTime;
    for (const alive of [processAliveSync, (...a: Parameters<typeof processAlive>) => processAlive(...a)]) {
      expect(await alive(live.pid!, start)).toBe(true);
      expect(await alive(live.pid!, null)).toBe(true);
      // The same pid with another start time: the kernel gave the pid to a later process.
      expect(await alive(live.pid!, String(Number(start) + 1))).toBe(false);
      expect(await alive(0, null)).toBe(false);
      expect(await alive(-live.pid!, null)).toBe(false);
    }
    // A stat line that says zombie, and one that cannot be read (no /proc: the pid alone decides).
    expect(processAliveSync(live.pid!, null, () => statLine('node', 'Z', start))).toBe(false);
    expect(await processAlive(live.pid!, start, async () => statLine('node', 'X', start))).toBe(false);
    expect(processAliveSync(live.pid!, '1', () => { throw new Error('no /proc'); })).toBe(true);

    live.kill('SIGKILL');
    await once(live, 'exit');
    expect(processAliveSync(live.pid!, start)).toBe(false);
    expect(await processAlive(live.pid!, null)).toBe(false);
  });
});
