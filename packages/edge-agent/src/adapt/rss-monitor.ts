import { readdir, readFile } from 'node:fs/promises';

/** Options of {@link RssMonitor}. */
export interface RssMonitorOptions {
  /** The process whose tree is watched. */
  pid: number;
  /** Milliseconds between samples (default 1000). */
  intervalMs?: number;
  /** Called with each sample: the tree's resident memory now, and the highest seen so far (MiB). */
  onSample?: (sample: { rssMb: number; peakMb: number }) => void;
  /** Reads a /proc file (tests point it at fixtures); default fs.readFile. */
  readProc?: (path: string) => Promise<string>;
  /** Lists /proc (tests point it at fixtures); default fs.readdir('/proc'). */
  listProc?: () => Promise<string[]>;
}

/** VmRSS of one /proc/<pid>/status text, in KiB, or undefined (a kernel thread, a zombie). */
export function vmRssKib(status: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return m === null ? undefined : Number(m[1]);
}

/** The parent pid in one /proc/<pid>/stat text (the field after the parenthesised command, which may hold spaces). */
export function parentPid(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  const ppid = Number(fields[1]);
  return Number.isSafeInteger(ppid) ? ppid : undefined;
}

/**
 * Samples the resident memory (VmRSS) of a process and all its descendants from /proc, so that a job's budget
 * covers what it started too (kd-trainer's worker threads are in its own VmRSS; a child process would not be).
 * Linux only: elsewhere (no /proc) every sample reads 0 and nothing is enforced. Resident memory, not virtual:
 * what the device actually runs out of.
 * @example
 * const m = new RssMonitor({ pid: child.pid, onSample: ({ rssMb }) => { if (rssMb > budget) child.kill('SIGINT'); } });
 * m.start(); … m.stop(); m.peakMb;
 */
export class RssMonitor {
  readonly pid: number;
  readonly intervalMs: number;
  #peakMb = 0;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  readonly #onSample: RssMonitorOptions['onSample'];
  readonly #read: (path: string) => Promise<string>;
  readonly #list: () => Promise<string[]>;

  constructor(options: RssMonitorOptions) {
    if (!Number.isSafeInteger(options?.pid) || options.pid <= 0) throw new RangeError(`pid must be a positive integer, got ${String(options?.pid)}`);
    this.pid = options.pid;
    this.intervalMs = options.intervalMs ?? 1000;
    if (!(this.intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${String(options.intervalMs)}`);
    this.#onSample = options.onSample;
    this.#read = options.readProc ?? ((path) => readFile(path, 'utf8'));
    this.#list = options.listProc ?? (() => readdir('/proc'));
  }

  /** The highest resident memory of the tree seen so far (MiB). */
  get peakMb(): number {
    return this.#peakMb;
  }

  /** The tree's pids: the process and every descendant alive now. */
  async tree(): Promise<number[]> {
    const children = new Map<number, number[]>();
    let names: string[];
    try {
      names = await this.#list();
    } catch {
      return [this.pid];
    }
    for (const name of names) {
      if (!/^\d+$/.test(name)) continue;
      const ppid = parentPid(await this.#read(`/proc/${name}/stat`).catch(() => ''));
      if (ppid === undefined) continue;
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    }
    const out: number[] = [];
    const queue = [this.pid];
    while (queue.length > 0) {
      const pid = queue.shift()!;
      if (out.includes(pid)) continue;
      out.push(pid);
      queue.push(...(children.get(pid) ?? []));
    }
    return out;
  }

  /** One sample now: the tree's VmRSS in MiB (0 when the process is gone); raises the peak and calls onSample. */
  async sample(): Promise<number> {
    let kib = 0;
    for (const pid of await this.tree()) kib += vmRssKib(await this.#read(`/proc/${pid}/status`).catch(() => '')) ?? 0;
    const rssMb = Math.round((kib / 1024) * 10) / 10;
    if (rssMb > this.#peakMb) this.#peakMb = rssMb;
    this.#onSample?.({ rssMb, peakMb: this.#peakMb });
    return rssMb;
  }

  /** Samples every `intervalMs` until {@link stop}; a sample that is still running is not overlapped. */
  start(): void {
    if (this.#timer !== undefined) return;
    const tick = (): void => {
      if (this.#busy) return;
      this.#busy = true;
      void this.sample().catch(() => 0).finally(() => {
        this.#busy = false;
      });
    };
    tick();
    this.#timer = setInterval(tick, this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
