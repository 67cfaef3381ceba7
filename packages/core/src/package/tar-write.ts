import { constants } from 'node:fs';
import { open, readFile, realpath, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { PackageError } from './errors.js';
import { tempSibling } from '../util/durable-write.js';
import { walkPackageDir } from './files.js';
import { isIsoDateTime, MANIFEST_FILE } from './manifest.js';
import { encodeTarHeader, TAR_BLOCK } from './tar-header.js';

/** Options of {@link packDirectory}. */
export interface PackOptions {
  /** Modification time of every entry; default: the manifest's `createdAt`, else the epoch. */
  mtime?: number | Date;
}

/** One entry written by {@link packDirectory}. */
export interface PackedEntry {
  path: string;
  type: 'file' | 'directory';
  size: number;
  mode: number;
}

/** What {@link packDirectory} wrote. */
export interface PackResult {
  tarPath: string;
  entries: PackedEntry[];
  /** Bytes of the archive. */
  size: number;
}

async function defaultMtime(dir: string): Promise<number> {
  try {
    const json: unknown = JSON.parse(await readFile(resolve(dir, MANIFEST_FILE), 'utf8'));
    const createdAt = (json as { createdAt?: unknown } | null)?.createdAt;
    if (typeof createdAt === 'string' && isIsoDateTime(createdAt)) return Math.max(0, Math.floor(Date.parse(createdAt) / 1000));
  } catch {
    // No readable manifest: fall back to the epoch, which is just as deterministic.
  }
  return 0;
}

const CHUNK = 1 << 20;

async function copyExactly(out: FileHandle, file: string, path: string, size: number): Promise<void> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)));
    let done = 0;
    while (done < size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - done), null);
      if (bytesRead === 0) break;
      await out.write(buf, 0, bytesRead);
      done += bytesRead;
    }
    // The header already promised `size` bytes; a file that changed under us would corrupt the archive.
    const { bytesRead: extra } = await fh.read(Buffer.alloc(1), 0, 1, null);
    if (done !== size || extra !== 0) {
      throw new PackageError('PACKAGE_SIZE_MISMATCH', `${path} changed size while it was being packed`, { path });
    }
  } finally {
    await fh.close();
  }
  const pad = (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
  if (pad > 0) await out.write(Buffer.alloc(pad));
}

/**
 * Write `dir` as a deterministic POSIX ustar archive at `tarPath` (through a temporary file and a
 * rename): manifest.json first, then every other entry in path order, uid/gid 0, mode 0644 (0755
 * for directories and executables), mtime from the manifest's `createdAt` or 0. Symlinks and
 * special files are refused ('PACKAGE_FILE_UNSUPPORTED', or 'PACKAGE_PATH_ESCAPE' for a link out).
 * @example
 * await packDirectory('out/yolov5n-1.2.0', 'out/yolov5n-1.2.0.tar');
 */
export async function packDirectory(dir: string, tarPath: string, options: PackOptions = {}): Promise<PackResult> {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('dir must be a directory path');
  if (typeof tarPath !== 'string' || tarPath === '') throw new TypeError('tarPath must be a file path');
  const root = await realpath(dir);
  const target = join(await realpath(dirname(resolve(tarPath))), basename(tarPath));
  const rel = relative(root, target);
  if (rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel))) {
    throw new RangeError(`tarPath must lie outside dir (${tarPath} is inside ${dir})`);
  }
  let mtime: number;
  if (options.mtime instanceof Date) mtime = Math.floor(options.mtime.getTime() / 1000);
  else if (options.mtime !== undefined) mtime = options.mtime;
  else mtime = await defaultMtime(root);
  if (!Number.isFinite(mtime) || mtime < 0) throw new RangeError(`mtime must be a time at or after the epoch, got ${String(options.mtime)}`);

  const found = await walkPackageDir(root);
  const entries = [...found.filter((e) => e.path === MANIFEST_FILE), ...found.filter((e) => e.path !== MANIFEST_FILE)];
  const tmp = tempSibling(target);
  const packed: PackedEntry[] = [];
  let size = 0;
  try {
    const out = await open(tmp, 'wx', 0o644);
    try {
      for (const e of entries) {
        const mode = e.type === 'directory' || (e.mode & 0o111) !== 0 ? 0o755 : 0o644;
        await out.write(encodeTarHeader({ path: e.path, type: e.type, mode, size: e.size, mtime }));
        if (e.type === 'file') await copyExactly(out, e.absolutePath, e.path, e.size);
        packed.push({ path: e.path, type: e.type, size: e.size, mode });
      }
      // POSIX: the archive ends with two zero blocks.
      await out.write(Buffer.alloc(2 * TAR_BLOCK));
      await out.sync();
      size = (await out.stat()).size;
    } finally {
      await out.close();
    }
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
  return { tarPath: target, entries: packed, size };
}
