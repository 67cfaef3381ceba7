import { createHash } from 'node:crypto';
import { z } from 'zod';
import { countSchema } from './common.js';
import { sha256Schema } from './ids.js';
import { protocolIssues } from './issues.js';
import { ProtocolError } from './protocol-error.js';

/** The four bytes every chunk frame starts with: ASCII `KDC1`. */
export const CHUNK_FRAME_MAGIC = Buffer.from('KDC1', 'latin1');
/** Largest JSON header a frame may declare, in bytes; the real one is about 250. */
export const MAX_CHUNK_HEADER_BYTES = 4096;
/** Default largest chunk {@link decodeChunkFrame} accepts: 16 MiB, the largest `chunkSize` a deploy may ask for. */
export const DEFAULT_MAX_CHUNK_BYTES = 16 * 1024 * 1024;

const PREAMBLE = CHUNK_FRAME_MAGIC.length + 4;

/**
 * The JSON header of a chunk frame: the package (`sha256` of the .tar), the chunk's `index` of `count`,
 * its byte `offset` in the .tar, its `size` and its own `chunkSha256`. Unknown extra fields are kept.
 */
export const chunkHeaderSchema = z
  .looseObject({
    sha256: sha256Schema,
    index: countSchema,
    count: z.int().min(1),
    offset: countSchema,
    size: countSchema,
    chunkSha256: sha256Schema,
  })
  .refine((h) => h.index < h.count, { message: 'expected an index below count', path: ['index'] });
/** A chunk frame header. */
export type ChunkHeader = z.infer<typeof chunkHeaderSchema>;

/** A decoded chunk frame; `data` is a view into the frame's bytes, not a copy. */
export interface ChunkFrame {
  header: ChunkHeader;
  data: Buffer;
}

/** Options of {@link decodeChunkFrame}. */
export interface DecodeChunkFrameOptions {
  /** Largest `size` accepted (default {@link DEFAULT_MAX_CHUNK_BYTES}). */
  maxChunkBytes?: number;
}

function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function frameError(message: string, field?: string, cause?: unknown): ProtocolError {
  return new ProtocolError('PROTOCOL_FRAME', `chunk frame: ${message}`, { field, cause });
}

/**
 * Encode one chunk of a package as a binary frame: `KDC1`, the header length (uint32 big-endian),
 * the UTF-8 JSON header, then the chunk's bytes. `size` and `chunkSha256` are computed from `data`.
 * @example
 * const frame = encodeChunkFrame({ sha256: tarSha, index: 0, count: 3, offset: 0 }, tar.subarray(0, 65536));
 */
export function encodeChunkFrame(header: Omit<ChunkHeader, 'size' | 'chunkSha256'>, data: Uint8Array): Buffer {
  if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
  const full = { ...header, size: data.length, chunkSha256: sha256Hex(data) };
  const checked = chunkHeaderSchema.safeParse(full, { reportInput: true });
  if (!checked.success) {
    const first = protocolIssues(checked.error)[0];
    throw new RangeError(`header.${first?.field ?? '(root)'}: ${first?.message ?? 'invalid'}`);
  }
  const json = Buffer.from(JSON.stringify(checked.data), 'utf8');
  if (json.length > MAX_CHUNK_HEADER_BYTES) throw new RangeError(`header is ${json.length} bytes of JSON, more than ${MAX_CHUNK_HEADER_BYTES}`);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length, 0);
  return Buffer.concat([CHUNK_FRAME_MAGIC, length, json, data]);
}

/**
 * Decode and check a chunk frame: magic, header length within bounds and within the frame, a valid
 * header, exactly `size` bytes of data, and their SHA-256 equal to `chunkSha256`. Every failure throws
 * ProtocolError 'PROTOCOL_FRAME'. Whether the chunk belongs to the package being fetched (its
 * `sha256`, `offset` and `count`) is the caller's check.
 */
export function decodeChunkFrame(frame: Uint8Array, options: DecodeChunkFrameOptions = {}): ChunkFrame {
  if (!(frame instanceof Uint8Array)) throw new TypeError('frame must be a Uint8Array');
  const maxChunkBytes = options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES;
  if (!Number.isSafeInteger(maxChunkBytes) || maxChunkBytes < 0) throw new RangeError(`options.maxChunkBytes must be an integer >= 0, got ${maxChunkBytes}`);
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (buf.length < PREAMBLE) throw frameError(`${buf.length} bytes is shorter than the ${PREAMBLE}-byte preamble (truncated)`);
  if (!buf.subarray(0, CHUNK_FRAME_MAGIC.length).equals(CHUNK_FRAME_MAGIC)) {
    throw frameError(`bad magic ${JSON.stringify(buf.subarray(0, 4).toString('latin1'))}, expected "KDC1"`);
  }
  const headerLength = buf.readUInt32BE(CHUNK_FRAME_MAGIC.length);
  if (headerLength === 0 || headerLength > MAX_CHUNK_HEADER_BYTES) {
    throw frameError(`header length ${headerLength} is outside 1..${MAX_CHUNK_HEADER_BYTES}`);
  }
  if (PREAMBLE + headerLength > buf.length) {
    throw frameError(`header length ${headerLength} runs past the end of the ${buf.length}-byte frame (truncated)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(PREAMBLE, PREAMBLE + headerLength)));
  } catch (err) {
    throw frameError(`the header is not UTF-8 JSON: ${(err as Error).message}`, undefined, err);
  }
  const parsed = chunkHeaderSchema.safeParse(json, { reportInput: true });
  if (!parsed.success) {
    const issues = protocolIssues(parsed.error);
    const first = issues[0] ?? { field: '(root)', message: 'invalid header' };
    throw new ProtocolError('PROTOCOL_FRAME', `chunk frame: header.${first.field}: ${first.message}`, { field: first.field, issues, cause: parsed.error });
  }
  const header = parsed.data;
  if (header.size > maxChunkBytes) throw frameError(`size ${header.size} is more than the ${maxChunkBytes} bytes allowed`, 'size');
  const dataStart = PREAMBLE + headerLength;
  const available = buf.length - dataStart;
  if (available < header.size) throw frameError(`the header says ${header.size} bytes but ${available} follow (truncated)`, 'size');
  if (available > header.size) throw frameError(`${available - header.size} bytes follow the ${header.size}-byte chunk`, 'size');
  const data = buf.subarray(dataStart);
  const actual = sha256Hex(data);
  if (actual !== header.chunkSha256) {
    throw frameError(`chunk ${header.index} hashes to ${actual}, not chunkSha256 ${header.chunkSha256}`, 'chunkSha256');
  }
  return { header, data };
}
