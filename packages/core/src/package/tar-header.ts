import { PackageError } from './errors.js';

/** Size of a tar block; headers are one block and data is padded to whole blocks. */
export const TAR_BLOCK = 512;

/** Largest entry size a ustar header can state: 11 octal digits. */
export const USTAR_MAX_SIZE = 0o77777777777;

/** The fields of a ustar header this code writes (POSIX.1-1988 ustar, IEEE Std 1003.1 `pax` "ustar Interchange Format"). */
export interface TarHeaderFields {
  /** Full path, split over `prefix` and `name` when longer than 100 bytes. */
  path: string;
  type: 'file' | 'directory';
  mode: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
}

/** A decoded header block, before the reader applies its rules. */
export interface RawTarHeader {
  /** `prefix/name` (or `name`) as written. */
  path: string;
  /** The typeflag character; '\0' reads as '0'. */
  typeflag: string;
  linkname: string;
  mode: number;
  size: number;
  mtime: number;
}

// Byte offsets and lengths of the ustar header fields.
const F = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const;

/**
 * Split a path into ustar `prefix` and `name` (at most 155 and 100 bytes, split at a `/`), or
 * return undefined when no split fits.
 */
export function splitUstarPath(path: string): { prefix: string; name: string } | undefined {
  const bytes = Buffer.byteLength(path);
  if (bytes <= 100) return { prefix: '', name: path };
  if (bytes > 256) return undefined;
  // Prefer the longest prefix that fits so the name part is as short as possible.
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name.length > 0) return { prefix, name };
  }
  return undefined;
}

function putString(block: Buffer, [at, len]: readonly [number, number], value: string): void {
  block.write(value, at, len, 'utf8');
}

// Octal, zero-padded to len - 1 digits and NUL-terminated, as GNU tar writes it.
function putOctal(block: Buffer, [at, len]: readonly [number, number], value: number): void {
  block.write(`${value.toString(8).padStart(len - 1, '0')}\0`, at, len, 'latin1');
}

/** The header checksum: the byte sum of the block with the checksum field read as eight spaces. */
export function tarChecksum(block: Uint8Array): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return { unsigned, signed };
}

/**
 * Encode one ustar header block: uid/gid 0, empty user and group names. Throws
 * 'PACKAGE_TAR_UNSUPPORTED' for a path that does not fit ustar or a size past 8 GiB.
 */
export function encodeTarHeader(fields: TarHeaderFields): Buffer {
  const path = fields.type === 'directory' ? `${fields.path}/` : fields.path;
  const split = splitUstarPath(path);
  if (split === undefined) {
    throw new PackageError('PACKAGE_TAR_UNSUPPORTED', `${fields.path} is too long for ustar (name 100 bytes, prefix 155, split at a "/")`, {
      path: fields.path,
    });
  }
  if (!Number.isSafeInteger(fields.size) || fields.size < 0 || fields.size > USTAR_MAX_SIZE) {
    throw new PackageError('PACKAGE_TAR_UNSUPPORTED', `${fields.path} has ${fields.size} bytes; ustar holds at most ${USTAR_MAX_SIZE}`, {
      path: fields.path,
    });
  }
  const block = Buffer.alloc(TAR_BLOCK);
  putString(block, F.name, split.name);
  putOctal(block, F.mode, fields.mode & 0o7777);
  putOctal(block, F.uid, 0);
  putOctal(block, F.gid, 0);
  putOctal(block, F.size, fields.size);
  putOctal(block, F.mtime, Math.max(0, Math.floor(fields.mtime)));
  block.write(fields.type === 'directory' ? '5' : '0', F.typeflag[0], 'latin1');
  block.write('ustar\0', F.magic[0], 'latin1');
  block.write('00', F.version[0], 'latin1');
  putOctal(block, F.devmajor, 0);
  putOctal(block, F.devminor, 0);
  putString(block, F.prefix, split.prefix);
  // Six octal digits, NUL, space: the historic form every reader accepts.
  const sum = tarChecksum(block).unsigned;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, F.chksum[0], 'latin1');
  return block;
}

function cString(block: Uint8Array, [at, len]: readonly [number, number], what: string): string {
  const field = block.subarray(at, at + len);
  const end = field.indexOf(0);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(end === -1 ? field : field.subarray(0, end));
  } catch (err) {
    throw new PackageError('PACKAGE_TAR_INVALID', `tar header ${what} is not valid UTF-8`, { cause: err });
  }
}

function octal(block: Uint8Array, [at, len]: readonly [number, number], what: string, offset: number): number {
  const field = block.subarray(at, at + len);
  if (field[0] & 0x80) {
    throw new PackageError('PACKAGE_TAR_UNSUPPORTED', `tar header at byte ${offset}: ${what} uses GNU base-256 numbers, which this reader does not support`);
  }
  const text = Buffer.from(field).toString('latin1').replace(/^ +/, '').replace(/[\0 ]+$/, '');
  // Readers that accept more (signs, digits 8/9, garbage after NUL) are how parser confusion starts.
  if (!/^[0-7]*$/.test(text) || text.length > 12) {
    throw new PackageError('PACKAGE_TAR_INVALID', `tar header at byte ${offset}: ${what} ${JSON.stringify(text)} is not an octal number`);
  }
  return text === '' ? 0 : parseInt(text, 8);
}

/** Whether a block is all zero bytes (an end-of-archive marker). */
export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < TAR_BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/**
 * Decode a header block at archive byte `offset`, checking its checksum ('PACKAGE_TAR_CHECKSUM')
 * and magic ('PACKAGE_TAR_UNSUPPORTED' for pre-POSIX archives). POSIX ustar and GNU headers are read;
 * the GNU form's prefix field holds times, so it is ignored there.
 */
export function decodeTarHeader(block: Uint8Array, offset: number): RawTarHeader {
  const stored = octal(block, F.chksum, 'chksum', offset);
  const { unsigned, signed } = tarChecksum(block);
  if (stored !== unsigned && stored !== signed) {
    throw new PackageError('PACKAGE_TAR_CHECKSUM', `tar header at byte ${offset} has checksum ${stored}, but its bytes sum to ${unsigned}`);
  }
  const magic = Buffer.from(block.subarray(257, 265)).toString('latin1');
  const posix = magic === 'ustar\u000000';
  if (!posix && magic !== 'ustar  \0') {
    throw new PackageError('PACKAGE_TAR_UNSUPPORTED', `tar header at byte ${offset} is not ustar (magic ${JSON.stringify(magic)}); write it with tar --format=ustar`);
  }
  const name = cString(block, F.name, 'name');
  const prefix = posix ? cString(block, F.prefix, 'prefix') : '';
  const typeflag = String.fromCharCode(block[F.typeflag[0]]);
  return {
    path: prefix === '' ? name : `${prefix}/${name}`,
    typeflag: typeflag === '\0' ? '0' : typeflag,
    linkname: cString(block, F.linkname, 'linkname'),
    mode: octal(block, F.mode, 'mode', offset),
    size: octal(block, F.size, 'size', offset),
    mtime: octal(block, F.mtime, 'mtime', offset),
  };
}
