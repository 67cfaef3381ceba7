import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The lock file of an on-device adaptation job folder: `<JOBDIR>/lock`. kd-trainer adapt writes it while it works on
 * the folder and removes it after; kd-agent only reads it, to stop a trainer an earlier agent process left running.
 */
export const JOB_LOCK_FILE = 'lock';

/**
 * What the lock file holds (JSON): the owner's pid and its start time, field 22 of `/proc/<pid>/stat` (clock ticks
 * since boot), so that a pid the kernel gave to another process since is not taken for the owner.
 */
export interface JobLockOwner {
  pid: number;
  /** Null where the owner found no /proc (its pid alone is checked then). */
  startTime: string | null;
  /** When the lock was taken (ISO 8601), for people; empty when the file does not say. */
  since: string;
  /** The command that took it (`kd-trainer adapt`), for people; empty when the file does not say. */
  by: string;
}

/** The two fields of `/proc/<pid>/stat` the lock needs: the state (field 3: `R`, `S`, `Z`, …) and the start time (field 22). */
export interface ProcStat {
  state: string;
  startTime: string;
}

/** Reads a /proc file (tests point it elsewhere). */
export type ReadProc = (path: string) => Promise<string>;
/** Reads a /proc file synchronously (tests point it elsewhere). */
export type ReadProcSync = (path: string) => string;

const readProcFile: ReadProc = (path) => readFile(path, 'utf8');
const readProcFileSync: ReadProcSync = (path) => readFileSync(path, 'utf8');

/**
 * The state and start time of a `/proc/<pid>/stat` line, or undefined when it is not one (no command name in
 * parentheses, or fewer than 22 fields).
 * @example
 * parseProcStat('42 (my (odd) name) S 1 … 7741 …'); // { state: 'S', startTime: '7741' }
 */
export function parseProcStat(text: string): ProcStat | undefined {
  // The command name (field 2) is parenthesised and may hold spaces and parentheses: count from the last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).trimEnd().split(' ');
  const state = fields[0];
  const startTime = fields[19];
  if (!state || !startTime) return undefined;
  return { state, startTime };
}

/**
 * The owner a lock file's text names, or undefined when it does not parse or names no valid owner (a torn write,
 * which counts as stale): `pid` must be a positive integer and `startTime` a string or null. `since` and `by` are
 * only for people: one missing or not a string reads as empty.
 */
export function parseJobLock(text: string): JobLockOwner | undefined {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null) return undefined;
  const { pid, startTime, since, by } = o as Partial<Record<keyof JobLockOwner, unknown>>;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  if (startTime !== null && typeof startTime !== 'string') return undefined;
  return { pid, startTime, since: typeof since === 'string' ? since : '', by: typeof by === 'string' ? by : '' };
}

/** The owner named by `<dir>/lock`, or undefined when there is none or it does not parse ({@link parseJobLock}). */
export async function readJobLock(dir: string): Promise<JobLockOwner | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, JOB_LOCK_FILE), 'utf8');
  } catch {
    return undefined;
  }
  return parseJobLock(text);
}

/** State and start time of process `pid` ({@link parseProcStat}), or undefined when it is gone or there is no /proc. */
export async function procStat(pid: number, readProc: ReadProc = readProcFile): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readProc(`/proc/${pid}/stat`));
  } catch {
    return undefined;
  }
}

/** {@link procStat}, read synchronously. */
export function procStatSync(pid: number, readProc: ReadProcSync = readProcFileSync): ProcStat | undefined {
  try {
    return parseProcStat(readProc(`/proc/${pid}/stat`));
  } catch {
    return undefined;
  }
}

/**
 * Whether process `pid` is alive and, when `startTime` is given, the one started then: signal 0 finds it (EPERM: it
 * exists, not ours), it is not a zombie (exited, not reaped yet, it still answers signal 0), and its /proc start time
 * is `startTime` (else the pid was reused by a later process). Without /proc the pid alone decides.
 */
export async function processAlive(pid: number, startTime: string | null, readProc: ReadProc = readProcFile): Promise<boolean> {
  return pidExists(pid) && stillThere(await procStat(pid, readProc), startTime);
}

/** {@link processAlive}, read synchronously. */
export function processAliveSync(pid: number, startTime: string | null, readProc: ReadProcSync = readProcFileSync): boolean {
  return pidExists(pid) && stillThere(procStatSync(pid, readProc), startTime);
}

/** A positive pid that signal 0 finds; 0 and negative pids name process groups, never an owner. */
function pidExists(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function stillThere(stat: ProcStat | undefined, startTime: string | null): boolean {
  if (stat === undefined) return true;
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === null || stat.startTime === startTime;
}
