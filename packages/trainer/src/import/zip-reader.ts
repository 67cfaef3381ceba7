import zlib from 'node:zlib';
import { WeightsError } from '../errors.js';

/** One member of a zip archive, as its central directory describes it. */
export interface ZipEntry {
  name: string;
  /** 0 = STORED, 8 = DEFLATE. */
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
  localHeaderOffset: number;
}

// APPNOTE.TXT 6.3.10, section 4.3: record signatures and fixed sizes.
const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_SIZE = 56;
const MAX_COMMENT = 0xffff;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;

// zlib.crc32 arrived in Node 20.15; package.json allows 20.9.
const crc32: (data: Uint8Array) => number =
  typeof zlib.crc32 === 'function' ? (data) => zlib.crc32(data) : crc32Table;

let crcTable: Uint32Array | undefined;
function crc32Table(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A read-only zip archive held in memory: STORED and DEFLATE members, ZIP64, CRC-32 checked on read.
 * Every defect of the input (truncation, bad offsets, bad checksums) is a {@link WeightsError} naming the file.
 * @example
 * const zip = new ZipReader(await readFile('yolov5n.pt'), 'yolov5n.pt');
 * const pkl = zip.read(zip.names().find((n) => n.endsWith('/data.pkl'))!);
 */
export class ZipReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #file: string;
  readonly #entries = new Map<string, ZipEntry>();

  /** Parses the central directory of `bytes`; `file` names the archive in error messages. */
  constructor(bytes: Uint8Array, file: string) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#file = file;
    this.#readCentralDirectory();
  }

  /** The member names in central-directory order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** The member called `name`, or undefined. */
  entry(name: string): ZipEntry | undefined {
    return this.#entries.get(name);
  }

  /** Whether the archive has a member called `name`. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The uncompressed, CRC-checked bytes of member `name`. STORED members are views into the archive, not copies. */
  read(name: string): Uint8Array {
    const e = this.#entries.get(name);
    if (!e) throw this.#error(`no member ${name}`);
    const at = e.localHeaderOffset;
    if (at + LOCAL_SIZE > this.#bytes.length || this.#u32(at) !== SIG_LOCAL) {
      throw this.#error(`member ${name}: no local header at byte ${at}`);
    }
    // Sizes in the local header may be zero (data descriptor) or 0xffffffff (ZIP64): the central directory is authoritative.
    const start = at + LOCAL_SIZE + this.#u16(at + 26) + this.#u16(at + 28);
    const end = start + e.compressedSize;
    if (end > this.#bytes.length) throw this.#error(`member ${name} is truncated (needs bytes ${start}..${end}, file has ${this.#bytes.length})`);
    const raw = this.#bytes.subarray(start, end);
    let data: Uint8Array;
    if (e.method === METHOD_STORED) {
      if (e.compressedSize !== e.uncompressedSize) throw this.#error(`member ${name} is STORED but its sizes differ`);
      data = raw;
    } else if (e.method === METHOD_DEFLATE) {
      // DEFLATE cannot expand more than 1032:1, so a larger declared size is a lie (or a bomb).
      if (e.uncompressedSize > e.compressedSize * 1032 + 1024) {
        throw this.#error(`member ${name} claims ${e.uncompressedSize} bytes from ${e.compressedSize} compressed, more than DEFLATE can expand`);
      }
      try {
        // maxOutputLength bounds a decompression bomb to the declared size (+1 to notice an overlong stream).
        data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.uncompressedSize + 1) });
      } catch (err) {
        throw this.#error(`member ${name}: bad DEFLATE data (${(err as Error).message})`, err);
      }
      if (data.length !== e.uncompressedSize) {
        throw this.#error(`member ${name} inflates to ${data.length} bytes, the directory says ${e.uncompressedSize}`);
      }
    } else {
      throw this.#error(`member ${name} uses compression method ${e.method}; only STORED (0) and DEFLATE (8) are supported`);
    }
    const crc = crc32(data);
    if (crc !== e.crc32) throw this.#error(`member ${name} fails its CRC-32 check (0x${hex(crc)}, expected 0x${hex(e.crc32)})`);
    return data;
  }

  #readCentralDirectory(): void {
    const n = this.#bytes.length;
    if (n < EOCD_SIZE) throw this.#error(`not a zip archive (${n} bytes, too short)`);
    const eocd = this.#findEocd();
    let count = this.#u16(eocd + 10);
    let cdSize = this.#u32(eocd + 12);
    let cdOffset = this.#u32(eocd + 16);
    const saturated = count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff;
    // torch writes a ZIP64 end record even for small files; read it whenever its locator is present.
    const loc = eocd - ZIP64_LOCATOR_SIZE;
    if (loc >= 0 && this.#u32(loc) === SIG_ZIP64_LOCATOR) {
      const rec = this.#u64(loc + 8, 'ZIP64 end record offset');
      if (rec + ZIP64_EOCD_SIZE <= loc && this.#u32(rec) === SIG_ZIP64_EOCD) {
        count = this.#u64(rec + 32, 'ZIP64 entry count');
        cdSize = this.#u64(rec + 40, 'ZIP64 central directory size');
        cdOffset = this.#u64(rec + 48, 'ZIP64 central directory offset');
      } else if (saturated) {
        throw this.#error(`bad ZIP64 end of central directory record (offset ${rec})`);
      }
    } else if (saturated) {
      throw this.#error('needs a ZIP64 end of central directory record but has none');
    }
    if (cdOffset + cdSize > n) {
      throw this.#error(`truncated or corrupt: central directory at bytes ${cdOffset}..${cdOffset + cdSize}, file has ${n}`);
    }
    if (count * CENTRAL_SIZE > cdSize) throw this.#error(`corrupt: ${count} entries cannot fit a ${cdSize}-byte central directory`);
    let p = cdOffset;
    const cdEnd = cdOffset + cdSize;
    const utf8 = new TextDecoder('utf-8', { fatal: false });
    for (let i = 0; i < count; i++) {
      if (p + CENTRAL_SIZE > cdEnd || this.#u32(p) !== SIG_CENTRAL) throw this.#error(`corrupt: bad central directory entry ${i} at byte ${p}`);
      const flags = this.#u16(p + 8);
      const method = this.#u16(p + 10);
      const crc = this.#u32(p + 16);
      let compressedSize = this.#u32(p + 20);
      let uncompressedSize = this.#u32(p + 24);
      const nameLen = this.#u16(p + 28);
      const extraLen = this.#u16(p + 30);
      const commentLen = this.#u16(p + 32);
      let localHeaderOffset = this.#u32(p + 42);
      const next = p + CENTRAL_SIZE + nameLen + extraLen + commentLen;
      if (next > cdEnd) throw this.#error(`corrupt: central directory entry ${i} runs past the directory`);
      const name = utf8.decode(this.#bytes.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLen));
      if (flags & 1) throw this.#error(`member ${name} is encrypted`);
      // APPNOTE 4.5.3: the ZIP64 extra field holds, in this order, only the fields saturated above.
      let x = p + CENTRAL_SIZE + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = this.#u16(x);
        const size = this.#u16(x + 2);
        if (x + 4 + size > xEnd) throw this.#error(`corrupt: bad extra field in central directory entry ${name}`);
        if (id === 0x0001) {
          let q = x + 4;
          const take = (what: string): number => {
            if (q + 8 > x + 4 + size) throw this.#error(`corrupt: short ZIP64 extra field in entry ${name}`);
            const v = this.#u64(q, what);
            q += 8;
            return v;
          };
          if (uncompressedSize === 0xffffffff) uncompressedSize = take('ZIP64 uncompressed size');
          if (compressedSize === 0xffffffff) compressedSize = take('ZIP64 compressed size');
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('ZIP64 local header offset');
        }
        x += 4 + size;
      }
      if (localHeaderOffset >= cdOffset && localHeaderOffset < cdEnd) {
        throw this.#error(`corrupt: member ${name} points into the central directory`);
      }
      this.#entries.set(name, { name, method, compressedSize, uncompressedSize, crc32: crc, localHeaderOffset });
      p = next;
    }
  }

  #findEocd(): number {
    const n = this.#bytes.length;
    const stop = Math.max(0, n - EOCD_SIZE - MAX_COMMENT);
    for (let p = n - EOCD_SIZE; p >= stop; p--) {
      if (this.#bytes[p] === 0x50 && this.#u32(p) === SIG_EOCD && p + EOCD_SIZE + this.#u16(p + 20) <= n) return p;
    }
    const head = this.#bytes.length >= 4 ? this.#u32(0) : 0;
    throw this.#error(
      head === SIG_LOCAL
        ? 'truncated or corrupt: no end of central directory record'
        : 'not a zip archive (no end of central directory record)',
    );
  }

  #u16(p: number): number {
    return this.#view.getUint16(p, true);
  }
  #u32(p: number): number {
    return this.#view.getUint32(p, true);
  }
  #u64(p: number, what: string): number {
    if (p < 0 || p + 8 > this.#bytes.length) throw this.#error(`truncated: ${what} at byte ${p} is past the end`);
    const v = this.#view.getBigUint64(p, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.#error(`corrupt: ${what} ${v} is out of range`);
    return Number(v);
  }
  #error(what: string, cause?: unknown): WeightsError {
    return new WeightsError(`${this.#file}: ${what}`, cause === undefined ? undefined : { cause });
  }
}

function hex(v: number): string {
  return v.toString(16).padStart(8, '0');
}
