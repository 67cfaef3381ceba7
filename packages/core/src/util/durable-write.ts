import { randomBytes } from 'node:crypto';
import { link, lstat, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Marks the names of temporary siblings (`.<name>.tmp-<hex>`), so recovery after a crash can find and remove them. */
export const TMP_TAG = '.tmp-';

/** A fresh hidden sibling name of `path` for a temporary file or folder that a rename will put in place: `.<name>.<tag>-<hex>`. */
export function tempSibling(path: string, tag = 'tmp'): string {
  return join(dirname(path), `.${basename(path)}.${tag}-${randomBytes(6).toString('hex')}`);
}

// A folder that cannot be opened or synced for these reasons is on a platform or file system that does not
// support it (Windows, some network file systems): there a rename is as durable as it gets.
const DIR_OPEN_UNSUPPORTED = new Set(['EISDIR', 'EPERM', 'EACCES']);
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'EBADF', 'EPERM', 'EISDIR', 'ENOTSUP']);

/** fsync a folder so that the renames and creations inside it survive a power cut; skipped where the platform cannot. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
  } catch (err) {
    if (DIR_OPEN_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) return;
    throw err;
  }
  try {
    await fh.sync();
  } catch (err) {
    if (!DIR_SYNC_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `path` with `data` so that a reader, or a restart after a crash at any moment, sees the old content or the
 * whole new one: a temporary sibling ({@link tempSibling}) is written, fsynced and renamed over `path`, then the folder
 * is fsynced. A failure removes the temporary file and leaves `path` as it was. `data` may be given in parts.
 * With `exclusive`, an existing `path` is kept and the call fails with EEXIST (the file is linked into place, which
 * refuses an existing target atomically, where a check before the rename would race).
 * @example await writeFileDurable('store/state.json', JSON.stringify(state));
 */
export async function writeFileDurable(
  path: string, data: string | Uint8Array | readonly Uint8Array[], mode = 0o644, options: { exclusive?: boolean } = {},
): Promise<void> {
  const tmp = tempSibling(path);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) await fh.writeFile(data);
      else for (const part of data) if (part.byteLength > 0) await fh.write(part);
      await fh.chmod(mode); // the umask may have narrowed it
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (options.exclusive) await link(tmp, path);
    else await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
  await fsyncDir(dirname(path));
}

/** fsync every regular file and folder under `root` (links are not followed), so a marker written next never claims data still in the page cache. */
export async function fsyncTree(root: string): Promise<void> {
  const st = await lstat(root);
  if (st.isDirectory()) {
    for (const name of await readdir(root)) await fsyncTree(join(root, name));
    await fsyncDir(root);
  } else if (st.isFile()) {
    const fh = await open(root, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}
