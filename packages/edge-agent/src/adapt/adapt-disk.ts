import { lstat, readdir, statfs as fsStatfs } from 'node:fs/promises';
import { join } from 'node:path';
import { AdaptJobError } from './adapt-error.js';

/** What {@link checkAdaptDisk} needs of `fs.statfs`: free blocks for unprivileged users, and the block size. */
export type StatfsFn = (path: string) => Promise<{ bavail: number | bigint; bsize: number | bigint }>;

/** The parts of a job folder's estimate, in bytes. */
export interface AdaptDiskEstimate {
  /** The student's `.kdw` (copied into the job's `base/`). */
  weights: number;
  /** The package's `val/` (copied). */
  val: number;
  /** The package's `replay/` (copied). */
  replay: number;
  /** The captured frames: hard-linked into the job where the file system allows, copied where it does not. */
  frames: number;
  /** Checkpoints (last.kdw, best.kdw) and the export: 3 × the weights. */
  checkpoints: number;
  total: number;
}

/** Bytes of the files under `path` (a file's own size; 0 when it does not exist). Symbolic links count as themselves. */
export async function pathBytes(path: string | undefined): Promise<number> {
  if (path === undefined) return 0;
  let st;
  try {
    st = await lstat(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const e of await readdir(path, { withFileTypes: true }).catch(() => [])) total += await pathBytes(join(path, e.name));
  return total;
}

/**
 * The disk a job folder may take: the base's weights, `val/` and `replay/` (copied at admission), the frames (a
 * copy where hard links cannot be made), and 3 × the weights for the checkpoints and the export.
 */
export async function estimateJobBytes(o: { weights: string; val?: string[]; replay?: string; frames?: string }): Promise<AdaptDiskEstimate> {
  const weights = await pathBytes(o.weights);
  let val = 0;
  for (const v of o.val ?? []) val += await pathBytes(v);
  const replay = await pathBytes(o.replay);
  const frames = await pathBytes(o.frames);
  const checkpoints = 3 * weights;
  return { weights, val, replay, frames, checkpoints, total: weights + val + replay + frames + checkpoints };
}

const mib = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

/**
 * Refuses a job the data folder cannot hold: when its free space (`statfs(dir)`: available blocks × block size) minus
 * the job's {@link AdaptDiskEstimate} is under `reserveBytes` (the agent's `limits.reserveDiskBytes`, the space it
 * always leaves free), AdaptJobError 'AGENT_ADAPT_DISK' naming the free space, each part of the estimate and the
 * reserve. Returns the free bytes otherwise.
 * @example
 * await checkAdaptDisk({ dir: '/var/lib/kd-agent/adapt', estimate, reserveBytes: 64 << 20 });
 */
export async function checkAdaptDisk(o: { dir: string; estimate: AdaptDiskEstimate; reserveBytes: number; statfs?: StatfsFn }): Promise<number> {
  const st = await (o.statfs ?? fsStatfs)(o.dir);
  const free = Number(st.bavail) * Number(st.bsize);
  const e = o.estimate;
  if (free - e.total < o.reserveBytes) {
    throw new AdaptJobError(
      'AGENT_ADAPT_DISK',
      `not enough disk for the job: ${o.dir} has ${mib(free)} free (${free} bytes); the job needs about ${mib(e.total)} (${e.total} bytes: ` +
        `weights ${mib(e.weights)}, val ${mib(e.val)}, replay ${mib(e.replay)}, frames ${mib(e.frames)}, checkpoints and exports 3 × weights ${mib(e.checkpoints)}), ` +
        `which would leave ${mib(free - e.total)}, under limits.reserveDiskBytes ${mib(o.reserveBytes)} (${o.reserveBytes} bytes); free some space or lower the capture's maxBytes`,
    );
  }
  return free;
}
