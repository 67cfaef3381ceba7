import { open, stat, type FileHandle } from 'node:fs/promises';
import { PackageError } from './errors.js';
import { normalizeArchivePath, packagePathProblem } from './package-path.js';
import { decodeTarHeader, isZeroBlock, TAR_BLOCK } from './tar-header.js';

/** A regular file or directory of a tar archive, checked and indexed. */
export interface TarEntry {
  /** Canonical POSIX path (no `./`, no trailing `/`). */
  path: string;
  type: 'file' | 'directory';
  size: number;
  /** Permission bits (0o777 at most; set-id and sticky bits are dropped). */
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Where the entry's data starts in the archive. */
  dataOffset: number;
}

/** A tar entry with its bytes (empty for directories). */
export interface TarFile extends TarEntry {
  data: Buffer;
}

/** Options of {@link TarReader.open} and {@link readTar}. */
export interface TarReadOptions {
  /** Refuse archives with more entries than this (default 100 000). */
  maxEntries?: number;
}

interface ByteSource {
  size: number;
  read(position: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read: async (position, length) => bytes.subarray(position, position + length),
    close: async () => {},
  };
}

async function fileSource(path: string): Promise<ByteSource> {
  // Opening a FIFO would block until a writer comes, so look before opening.
  if (!(await stat(path)).isFile()) throw new PackageError('PACKAGE_TAR_INVALID', `${path} is not a regular file`);
  const fh: FileHandle = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new PackageError('PACKAGE_TAR_INVALID', `${path} is not a regular file`);
    return {
      size: st.size,
      async read(position, length) {
        const buf = Buffer.alloc(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(buf, done, length - done, position + done);
          if (bytesRead === 0) throw new PackageError('PACKAGE_TAR_TRUNCATED', `${path} shrank while it was being read`);
          done += bytesRead;
        }
        return buf;
      },
      close: () => fh.close(),
    };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

const LINK_TYPES: Record<string, string> = { '1': 'a hard link', '2': 'a symlink' };
const OTHER_TYPES: Record<string, string> = {
  '3': 'a character device',
  '4': 'a block device',
  '6': 'a FIFO',
  x: 'a pax extended header',
  g: 'a pax global header',
  L: 'a GNU long name',
  K: 'a GNU long link name',
};

function ancestors(path: string): string[] {
  const parts = path.split('/');
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/** Whether `target`, resolved lexically from directory `base`, climbs above the root. */
function leavesRoot(base: string[], target: string): boolean {
  const stack = [...base];
  for (const seg of target.split('/')) {
    if (seg === '..') {
      if (stack.pop() === undefined) return true;
    } else if (seg !== '' && seg !== '.') stack.push(seg);
  }
  return false;
}

/** Index every header of an archive, enforcing the rules listed on {@link TarReader.open}. */
async function indexArchive(src: ByteSource, maxEntries: number): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const files = new Set<string>();
  const dirs = new Set<string>();
  const implied = new Set<string>();
  let pos = 0;
  for (;;) {
    if (pos + TAR_BLOCK > src.size) {
      throw new PackageError('PACKAGE_TAR_TRUNCATED', `the archive ends at byte ${src.size} without its end-of-archive blocks`);
    }
    const block = await src.read(pos, TAR_BLOCK);
    if (isZeroBlock(block)) {
      // POSIX ends an archive with two zero blocks; one alone means it was cut short.
      if (pos + 2 * TAR_BLOCK > src.size) {
        throw new PackageError('PACKAGE_TAR_TRUNCATED', `the archive ends at byte ${src.size} after a single zero block`);
      }
      if (!isZeroBlock(await src.read(pos + TAR_BLOCK, TAR_BLOCK))) {
        throw new PackageError('PACKAGE_TAR_INVALID', `a lone zero block at byte ${pos} is followed by data`);
      }
      return entries;
    }
    const h = decodeTarHeader(block, pos);
    const dataOffset = pos + TAR_BLOCK;
    if (dataOffset + h.size > src.size) {
      throw new PackageError('PACKAGE_TAR_TRUNCATED', `${JSON.stringify(h.path)} claims ${h.size} bytes, past the end of the archive (${src.size} bytes)`, {
        path: h.path,
      });
    }
    const path = normalizeArchivePath(h.path);
    const problem = packagePathProblem(path);
    if (path !== '' && problem !== undefined) {
      throw new PackageError(problem.escape ? 'PACKAGE_PATH_ESCAPE' : 'PACKAGE_TAR_INVALID', `tar entry ${JSON.stringify(h.path)} is refused: ${problem.reason}`, {
        path: h.path,
      });
    }
    const link = LINK_TYPES[h.typeflag];
    if (link !== undefined) {
      // A symlink resolves against its own directory, a hard link against the archive root.
      const base = h.typeflag === '2' ? path.split('/').slice(0, -1) : [];
      const escapes = h.linkname.startsWith('/') || leavesRoot(base, h.linkname);
      throw new PackageError(
        escapes ? 'PACKAGE_PATH_ESCAPE' : 'PACKAGE_TAR_UNSUPPORTED',
        `tar entry ${JSON.stringify(h.path)} is ${link} to ${JSON.stringify(h.linkname)}${escapes ? ', outside the package' : '; packages hold only regular files and directories'}`,
        { path: h.path },
      );
    }
    let type: TarEntry['type'];
    if (h.typeflag === '0' || h.typeflag === '7') type = 'file';
    else if (h.typeflag === '5') type = 'directory';
    else {
      const what = OTHER_TYPES[h.typeflag] ?? `of unknown type ${JSON.stringify(h.typeflag)}`;
      throw new PackageError('PACKAGE_TAR_UNSUPPORTED', `tar entry ${JSON.stringify(h.path)} is ${what}; only ustar files and directories are read (tar --format=ustar)`, {
        path: h.path,
      });
    }
    if (type === 'file' && (path === '' || h.path.endsWith('/'))) {
      throw new PackageError('PACKAGE_TAR_INVALID', `tar entry ${JSON.stringify(h.path)} is a regular file with a directory name`, { path: h.path });
    }
    if (type === 'directory' && h.size !== 0) {
      throw new PackageError('PACKAGE_TAR_INVALID', `directory ${JSON.stringify(h.path)} claims ${h.size} bytes of data`, { path: h.path });
    }
    pos = dataOffset + Math.ceil(h.size / TAR_BLOCK) * TAR_BLOCK;
    if (path === '') continue; // `./`, the archive root

    const clash = files.has(path) || dirs.has(path) || (type === 'file' && implied.has(path)) || ancestors(path).some((a) => files.has(a));
    if (clash) {
      throw new PackageError('PACKAGE_TAR_DUPLICATE', `tar entry ${JSON.stringify(h.path)} repeats or collides with an earlier entry`, { path });
    }
    (type === 'file' ? files : dirs).add(path);
    for (const a of ancestors(path)) implied.add(a);
    if (entries.length >= maxEntries) throw new PackageError('PACKAGE_TAR_INVALID', `the archive holds more than ${maxEntries} entries`);
    entries.push({ path, type, size: h.size, mode: h.mode & 0o777, mtime: h.mtime, dataOffset });
  }
}

const CHUNK = 1 << 20;

/**
 * Random access to a checked tar archive (a file path or bytes). Opening indexes every header, so
 * a damaged or hostile archive is refused before any data is used.
 */
export class TarReader {
  /** The archive's files and directories in archive order. */
  readonly entries: readonly TarEntry[];
  readonly #src: ByteSource;
  readonly #byPath: Map<string, TarEntry>;

  private constructor(src: ByteSource, entries: TarEntry[]) {
    this.#src = src;
    this.entries = entries;
    this.#byPath = new Map(entries.map((e) => [e.path, e]));
  }

  /**
   * Open and index an archive. Refused with a PackageError: a bad header checksum
   * ('PACKAGE_TAR_CHECKSUM'); an archive cut short or an entry past its end ('PACKAGE_TAR_TRUNCATED');
   * an absolute path, a `..` segment or a link out ('PACKAGE_PATH_ESCAPE'); a repeated or colliding
   * path ('PACKAGE_TAR_DUPLICATE'); links, devices, FIFOs, pax and GNU extensions
   * ('PACKAGE_TAR_UNSUPPORTED'); malformed fields ('PACKAGE_TAR_INVALID').
   * @example
   * const tar = await TarReader.open('model.tar');
   * try { const manifest = await tar.read(tar.get('manifest.json')!); } finally { await tar.close(); }
   */
  static async open(source: string | Uint8Array, options: TarReadOptions = {}): Promise<TarReader> {
    const src = typeof source === 'string' ? await fileSource(source) : source instanceof Uint8Array ? bytesSource(source) : undefined;
    if (src === undefined) throw new TypeError('source must be a file path or a Uint8Array');
    try {
      return new TarReader(src, await indexArchive(src, options.maxEntries ?? 100_000));
    } catch (err) {
      await src.close();
      throw err;
    }
  }

  /** The entry at a canonical path, if any. */
  get(path: string): TarEntry | undefined {
    return this.#byPath.get(path);
  }

  /** The bytes of an entry in chunks of at most `chunkBytes`, for streaming large files. */
  async *chunks(entry: TarEntry, chunkBytes = CHUNK): AsyncGenerator<Uint8Array> {
    if (this.#byPath.get(entry.path) !== entry) throw new RangeError('entry must be one of this reader\'s entries');
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
    for (let done = 0; done < entry.size; ) {
      const n = Math.min(chunkBytes, entry.size - done);
      yield await this.#src.read(entry.dataOffset + done, n);
      done += n;
    }
  }

  /** The whole content of an entry. */
  async read(entry: TarEntry): Promise<Buffer> {
    const parts: Uint8Array[] = [];
    for await (const chunk of this.chunks(entry)) parts.push(chunk);
    return Buffer.concat(parts, entry.size);
  }

  /** Release the archive file. */
  async close(): Promise<void> {
    await this.#src.close();
  }
}

/**
 * Read a small archive (a file path or bytes) into memory: every entry with its data, after the
 * checks of {@link TarReader.open}. Use {@link TarReader} to stream large files instead.
 */
export async function readTar(source: string | Uint8Array, options: TarReadOptions = {}): Promise<TarFile[]> {
  const tar = await TarReader.open(source, options);
  try {
    const out: TarFile[] = [];
    for (const entry of tar.entries) out.push({ ...entry, data: entry.type === 'file' ? await tar.read(entry) : Buffer.alloc(0) });
    return out;
  } finally {
    await tar.close();
  }
}
