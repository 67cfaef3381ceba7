import { setTimeout as delay } from 'node:timers/promises';
import { processAlive, type ReadProc } from '@kd-edge/core';

// The lock kd-trainer adapt keeps in its job folder (`<JOBDIR>/lock`: its pid and start time, so a pid the kernel gave
// to another process since is not taken for it) and the /proc reads are @kd-edge/core's, shared with kd-trainer, which
// takes the lock; the agent only reads it, to stop a trainer an earlier agent process left running before it starts its own.
export { JOB_LOCK_FILE, procStat, processAlive, readJobLock } from '@kd-edge/core';
export type { JobLockOwner, ReadProc } from '@kd-edge/core';

/** Options of {@link stopProcess}. */
export interface StopProcessOptions {
  /** The process's start time: a pid now held by another process is left alone. */
  startTime: string | null;
  /** After SIGTERM, how long it may take to stop (a trainer saves its checkpoint) before SIGKILL. */
  graceMs: number;
  /** Milliseconds between looks (default 100). */
  pollMs?: number;
  readProc?: ReadProc;
}

/**
 * Stops a process and waits until it is gone: SIGTERM (kd-trainer adapt stops after its current step, checkpoint saved),
 * SIGKILL when it still runs after `graceMs`, then up to 10 s more for the kernel. Returns how it ended: `gone`
 * (it was not running, or was another process), `terminated`, `killed`, or `stuck` (still there after SIGKILL: a
 * process in uninterruptible sleep).
 */
export async function stopProcess(pid: number, o: StopProcessOptions): Promise<'gone' | 'terminated' | 'killed' | 'stuck'> {
  const alive = (): Promise<boolean> => processAlive(pid, o.startTime, o.readProc);
  const poll = o.pollMs ?? 100;
  const waitGone = async (ms: number): Promise<boolean> => {
    for (const end = Date.now() + ms; Date.now() < end;) {
      if (!(await alive())) return true;
      await delay(poll);
    }
    return !(await alive());
  };
  if (!(await alive())) return 'gone';
  const signal = (sig: NodeJS.Signals): boolean => {
    try {
      process.kill(pid, sig);
      return true;
    } catch {
      return false;
    }
  };
  if (!signal('SIGTERM')) return 'gone';
  if (await waitGone(o.graceMs)) return 'terminated';
  signal('SIGKILL');
  return (await waitGone(10_000)) ? 'killed' : 'stuck';
}
