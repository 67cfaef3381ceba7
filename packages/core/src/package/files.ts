import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir, readlink, realpath } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { PackageError } from './errors.js';

/** A file or directory found under a package root. */
export interface PackageDirEntry {
  /** POSIX path relative to the root. */
  path: string;
  absolutePath: string;
  type: 'file' | 'directory';
  /** Bytes (0 for directories). */
  size: number;
  /** Permission bits. */
  mode: number;
}

/** Options of {@link walkPackageDir}. */
export interface WalkOptions {
  /** Refuse directories with more entries than this (default 100 000). */
  maxEntries?: number;
}

function inside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

async function refuseLink(root: string, abs: string, rel: string): Promise<never> {
  const target = await readlink(abs);
  let escapes = !inside(root, resolve(dirname(abs), target));
  if (!escapes) {
    // The lexical target may itself pass through another link; the real path settles it.
    escapes = await realpath(abs).then(
      (real) => !inside(root, real),
      () => false,
    );
  }
  if (escapes) throw new PackageError('PACKAGE_PATH_ESCAPE', `${rel} is a symlink to ${target}, outside the package`, { path: rel });
  throw new PackageError('PACKAGE_FILE_UNSUPPORTED', `${rel} is a symlink; packages hold only regular files and directories`, { path: rel });
}

function kind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Every file and directory under `root` (which is resolved through symlinks), sorted by POSIX
 * path in UTF-16 code-unit order. A symlink inside throws 'PACKAGE_PATH_ESCAPE' when it leads
 * outside the root and 'PACKAGE_FILE_UNSUPPORTED' otherwise, as does a FIFO, socket or device.
 */
export async function walkPackageDir(root: string, options: WalkOptions = {}): Promise<PackageDirEntry[]> {
  const maxEntries = options.maxEntries ?? 100_000;
  const realRoot = await realpath(root);
  const out: PackageDirEntry[] = [];
  const visit = async (absDir: string, relDir: string): Promise<void> => {
    for (const name of (await readdir(absDir)).sort()) {
      const abs = join(absDir, name);
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      const st = await lstat(abs);
      if (st.isSymbolicLink()) await refuseLink(realRoot, abs, rel);
      if (!st.isFile() && !st.isDirectory()) {
        throw new PackageError('PACKAGE_FILE_UNSUPPORTED', `${rel} is ${kind(st)}; packages hold only regular files and directories`, { path: rel });
      }
      if (out.length >= maxEntries) {
        throw new PackageError('PACKAGE_FILE_UNSUPPORTED', `${root} holds more than ${maxEntries} entries`, { path: rel });
      }
      out.push({ path: rel, absolutePath: abs, type: st.isFile() ? 'file' : 'directory', size: st.isFile() ? st.size : 0, mode: st.mode & 0o7777 });
      if (st.isDirectory()) await visit(abs, rel);
    }
  };
  await visit(realRoot, '');
  // readdir order per level is not the order of whole paths ('a-b' < 'a/c' but 'a' visits first).
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Options of {@link hashFile}. */
export interface HashFileOptions {
  /** The size the file must have; anything else throws 'PACKAGE_SIZE_MISMATCH'. */
  expectedSize?: number;
  /** Files above this many bytes throw 'PACKAGE_FILE_TOO_LARGE'. */
  maxBytes?: number;
  /** Package path used in error messages. */
  path?: string;
}

const CHUNK = 1 << 20;

/**
 * Stream a regular file through SHA-256 and return its lower-case hex digest and size. A symlink
 * is not followed, and reading stops as soon as the file proves larger than allowed.
 */
export async function hashFile(file: string, options: HashFileOptions = {}): Promise<{ sha256: string; size: number }> {
  const name = options.path ?? file;
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ELOOP') throw new PackageError('PACKAGE_FILE_UNSUPPORTED', `${name} is a symlink`, { path: name, cause: err });
    throw err;
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new PackageError('PACKAGE_FILE_UNSUPPORTED', `${name} is ${kind(st)}`, { path: name });
    const tooLarge = (size: number): PackageError =>
      new PackageError('PACKAGE_FILE_TOO_LARGE', `${name} has ${size} bytes, more than the ${options.maxBytes} allowed`, { path: name });
    const mismatch = (size: number): PackageError =>
      new PackageError('PACKAGE_SIZE_MISMATCH', `${name} has ${size} bytes; the manifest says ${options.expectedSize}`, { path: name });
    if (options.maxBytes !== undefined && st.size > options.maxBytes) throw tooLarge(st.size);
    if (options.expectedSize !== undefined && st.size !== options.expectedSize) throw mismatch(st.size);
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      size += bytesRead;
      // The file may grow while we read; stop at the first byte past what is allowed.
      if (options.maxBytes !== undefined && size > options.maxBytes) throw tooLarge(size);
      if (options.expectedSize !== undefined && size > options.expectedSize) throw mismatch(size);
      hash.update(buf.subarray(0, bytesRead));
    }
    if (options.expectedSize !== undefined && size !== options.expectedSize) throw mismatch(size);
    return { sha256: hash.digest('hex'), size };
  } finally {
    await fh.close();
  }
}

