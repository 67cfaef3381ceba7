import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm, lstat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Marks names of temporary siblings so recovery can find and remove them. */
export const TMP_TAG = '.tmp-';

/** A fresh hidden sibling name of `path` for a temporary file that a rename will put in place. */
export function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}${TMP_TAG}${randomBytes(6).toString('hex')}`);
}

/**
 * fsync a directory so that renames and creations inside it survive a power cut. Platforms that
 * cannot open a directory for syncing (Windows) are skipped: there a rename is as durable as it gets.
 */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
  } catch (err) {
    if (['EISDIR', 'EPERM', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '')) return;
    throw err;
  }
  try {
    await fh.sync();
  } catch (err) {
    if (!['EINVAL', 'EBADF', 'EPERM', 'EISDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await fh.close();
  }
}

/** Replace `path` with `data` so a reader (or a restart after a crash) sees the old or the whole new content: write a temporary file, fsync it, rename it, fsync the directory. */
export async function writeFileDurable(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempSibling(path);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** fsync every regular file and directory under `root` (links are not followed), so a later marker never claims data still in the page cache. */
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
