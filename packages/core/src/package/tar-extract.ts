import { lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { PackageError } from './errors.js';
import { tempSibling } from '../util/durable-write.js';
import { checkSizeLimits, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_TOTAL_BYTES } from './limits.js';
import { TarReader, type TarEntry, type TarReadOptions } from './tar-read.js';

/** Options of {@link extractTar}. */
export interface ExtractOptions extends TarReadOptions {
  /** Refuse an entry larger than this many bytes (default 2 GiB). */
  maxFileBytes?: number;
  /** Refuse an archive whose files add up to more than this (default 8 GiB). */
  maxTotalBytes?: number;
}

async function writeEntry(tar: TarReader, entry: TarEntry, file: string): Promise<void> {
  // 'wx': the temporary tree is new, so an existing file would mean something raced us.
  const fh = await open(file, 'wx', 0o600);
  try {
    for await (const chunk of tar.chunks(entry)) await fh.write(chunk);
    await fh.chmod(entry.mode & 0o111 ? 0o755 : 0o644);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Extract a checked tar archive (path or bytes) into `destDir`, which must not exist yet. The
 * archive is written into a temporary sibling directory that is renamed into place at the end,
 * so a failure leaves no half extraction. Modes are normalised to 0644/0755; every refusal of
 * {@link TarReader.open} applies, plus 'PACKAGE_FILE_TOO_LARGE' and 'PACKAGE_DEST_EXISTS'.
 * @example
 * const entries = await extractTar('incoming/yolov5n-1.2.0.tar', 'store/yolov5n/1.2.0');
 */
export async function extractTar(source: string | Uint8Array, destDir: string, options: ExtractOptions = {}): Promise<TarEntry[]> {
  if (typeof destDir !== 'string' || destDir === '') throw new TypeError('destDir must be a directory path');
  const dest = resolve(destDir);
  const exists = await lstat(dest).then(
    () => true,
    (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
  );
  if (exists) throw new PackageError('PACKAGE_DEST_EXISTS', `${destDir} already exists; extraction needs a new directory`, { path: destDir });

  const tar = await TarReader.open(source, options);
  const tmp = tempSibling(dest, 'extract');
  try {
    const files = tar.entries.filter((e) => e.type === 'file');
    checkSizeLimits(files, options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES, options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES);
    await mkdir(dirname(dest), { recursive: true });
    await mkdir(tmp, { mode: 0o755 });
    // Entry paths were checked by the reader (relative, no `..`) and the tree holds no links, so joins stay inside tmp.
    for (const entry of tar.entries) {
      const target = join(tmp, ...entry.path.split('/'));
      if (entry.type === 'directory') {
        await mkdir(target, { recursive: true, mode: 0o755 });
      } else {
        await mkdir(dirname(target), { recursive: true, mode: 0o755 });
        await writeEntry(tar, entry, target);
      }
    }
    await rename(tmp, dest);
    return [...tar.entries];
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    await tar.close();
  }
}
