import { endianness } from 'node:os';
import { crc32 } from 'node:zlib';

/** One sample's teacher outputs, as the cache stores them. */
export interface SampleRecord {
  /** Detection: per level NHWC [ny, nx, c] of one image. */
  levels?: { data: Float32Array; ny: number; nx: number; c: number }[];
  /** Classification logits [nc]. */
  logits?: Float32Array;
  /** Feature maps [C, H, W] of one image, in the teacher's feature order. */
  features?: { name: string; data: Float32Array; shape: [number, number, number] }[];
}

/** First bytes of a cache record. */
export const RECORD_MAGIC = 'KDTC';
const VERSION = 1;
const HEAD = 20;
const LE = endianness() === 'LE';

interface Descriptor {
  l?: [number, number, number][];
  nc?: number;
  f?: [string, number, number, number][];
}

function arrays(r: SampleRecord): Float32Array[] {
  return [...(r.levels ?? []).map((l) => l.data), ...(r.logits === undefined ? [] : [r.logits]), ...(r.features ?? []).map((f) => f.data)];
}

/**
 * Serialises a record: magic `KDTC`, then uint32 LE version, descriptor length J, payload length P and
 * CRC32 of descriptor + payload; a JSON descriptor of the shapes, space-padded to 4 bytes; then the
 * float32 little-endian values (levels, logits, features in that order).
 */
export function encodeRecord(r: SampleRecord): Buffer {
  const desc: Descriptor = {};
  if (r.levels !== undefined) desc.l = r.levels.map((l) => [l.ny, l.nx, l.c]);
  if (r.logits !== undefined) desc.nc = r.logits.length;
  if (r.features !== undefined) desc.f = r.features.map((f) => [f.name, ...f.shape]);
  const json = Buffer.from(JSON.stringify(desc), 'utf8');
  const j = Math.ceil(json.byteLength / 4) * 4;
  const parts = arrays(r);
  const p = parts.reduce((a, d) => a + d.byteLength, 0);
  const buf = Buffer.alloc(HEAD + j + p, 0x20);
  buf.write(RECORD_MAGIC, 0, 'latin1');
  buf.writeUInt32LE(VERSION, 4);
  buf.writeUInt32LE(j, 8);
  buf.writeUInt32LE(p, 12);
  json.copy(buf, HEAD);
  let off = HEAD + j;
  for (const d of parts) {
    if (LE) Buffer.from(d.buffer, d.byteOffset, d.byteLength).copy(buf, off);
    else for (let i = 0; i < d.length; i++) buf.writeFloatLE(d[i]!, off + 4 * i);
    off += d.byteLength;
  }
  buf.writeUInt32LE(crc32(buf.subarray(HEAD)) >>> 0, 16);
  return buf;
}

const dimsOk = (v: unknown[], from: number): boolean => v.slice(from).every((d) => Number.isInteger(d) && (d as number) > 0);

/** Parses a record written by {@link encodeRecord}; undefined when it is truncated, corrupt or of another version. */
export function decodeRecord(buf: Uint8Array): SampleRecord | undefined {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.byteLength < HEAD || b.toString('latin1', 0, 4) !== RECORD_MAGIC || b.readUInt32LE(4) !== VERSION) return undefined;
  const j = b.readUInt32LE(8);
  const p = b.readUInt32LE(12);
  if (j % 4 !== 0 || p % 4 !== 0 || b.byteLength !== HEAD + j + p) return undefined;
  if ((crc32(b.subarray(HEAD)) >>> 0) !== b.readUInt32LE(16)) return undefined;
  let desc: Descriptor;
  try {
    desc = JSON.parse(b.toString('utf8', HEAD, HEAD + j)) as Descriptor;
  } catch {
    return undefined;
  }
  if (desc === null || typeof desc !== 'object') return undefined;
  const values = new Float32Array(p / 4);
  if (LE) new Uint8Array(values.buffer).set(b.subarray(HEAD + j));
  else for (let i = 0; i < values.length; i++) values[i] = b.readFloatLE(HEAD + j + 4 * i);
  let off = 0;
  const take = (count: number): Float32Array | undefined => {
    if (off + count > values.length) return undefined;
    off += count;
    return values.subarray(off - count, off);
  };
  const r: SampleRecord = {};
  if (desc.l !== undefined) {
    if (!Array.isArray(desc.l)) return undefined;
    r.levels = [];
    for (const l of desc.l) {
      if (!Array.isArray(l) || l.length !== 3 || !dimsOk(l, 0)) return undefined;
      const data = take(l[0] * l[1] * l[2]);
      if (data === undefined) return undefined;
      r.levels.push({ data, ny: l[0], nx: l[1], c: l[2] });
    }
  }
  if (desc.nc !== undefined) {
    if (!Number.isInteger(desc.nc) || desc.nc < 1) return undefined;
    r.logits = take(desc.nc);
    if (r.logits === undefined) return undefined;
  }
  if (desc.f !== undefined) {
    if (!Array.isArray(desc.f)) return undefined;
    r.features = [];
    for (const f of desc.f) {
      if (!Array.isArray(f) || f.length !== 4 || typeof f[0] !== 'string' || !dimsOk(f, 1)) return undefined;
      const data = take(f[1] * f[2] * f[3]);
      if (data === undefined) return undefined;
      r.features.push({ name: f[0], data, shape: [f[1], f[2], f[3]] });
    }
  }
  return off === values.length ? r : undefined;
}
