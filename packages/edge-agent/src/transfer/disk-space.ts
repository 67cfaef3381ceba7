import { statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { TransferError } from './transfer-error.js';

/**
 * Bytes an unprivileged process may still write on the file system holding `path` (statfs
 * `bavail * bsize`). A path that does not exist yet is measured at its nearest existing parent.
 */
export async function freeBytes(path: string): Promise<number> {
  if (typeof path !== 'string' || path === '') throw new TypeError('path must be a file or folder path');
  let p = resolve(path);
  for (;;) {
    try {
      const st = await statfs(p);
      return st.bavail * st.bsize;
    } catch (err) {
      const parent = dirname(p);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === p) throw err;
      p = parent;
    }
  }
}

/** Options of {@link checkSpace}. */
export interface CheckSpaceOptions {
  /** Bytes that must stay free after the write (default 0), so the device keeps room for logs and the OS. */
  reserveBytes?: number;
}

function megabytes(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/**
 * Throw TRANSFER_DISK_FULL unless the file system holding `path` has `needBytes` free plus the
 * reserve; returns the free bytes measured.
 * @example
 * await checkSpace(store.downloadsDir, 2 * pkg.size, { reserveBytes: 256 << 20 });
 */
export async function checkSpace(path: string, needBytes: number, options: CheckSpaceOptions = {}): Promise<number> {
  if (!Number.isFinite(needBytes) || needBytes < 0) throw new RangeError(`needBytes must be a number >= 0, got ${String(needBytes)}`);
  const reserve = options.reserveBytes ?? 0;
  if (!Number.isFinite(reserve) || reserve < 0) throw new RangeError(`options.reserveBytes must be a number >= 0, got ${String(reserve)}`);
  const free = await freeBytes(path);
  if (free < needBytes + reserve) {
    throw new TransferError(
      'TRANSFER_DISK_FULL',
      `${path} needs ${needBytes} bytes (${megabytes(needBytes)})` +
        (reserve > 0 ? ` plus a reserve of ${megabytes(reserve)}` : '') +
        `, but only ${free} bytes (${megabytes(free)}) are free`,
    );
  }
  return free;
}
