import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeChunkFrame, encodeChunkFrame, MAX_CHUNK_HEADER_BYTES } from '../src/protocol/chunk-frame.js';
import { ProtocolError } from '../src/protocol/protocol-error.js';
import { fakeBytes } from './package-fixture.js';

const tar = fakeBytes(10_000, 7);
const tarSha = createHash('sha256').update(tar).digest('hex');
const chunkSize = 4096;

function frameOf(index: number): Buffer {
  const offset = index * chunkSize;
  return encodeChunkFrame({ sha256: tarSha, index, count: 3, offset }, tar.subarray(offset, offset + chunkSize));
}

function frameError(frame: Uint8Array, pattern: RegExp, options?: { maxChunkBytes?: number }): ProtocolError {
  try {
    decodeChunkFrame(frame, options);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('PROTOCOL_FRAME');
    expect((err as Error).message).toMatch(pattern);
    return err as ProtocolError;
  }
  throw new Error('expected a PROTOCOL_FRAME error');
}

/** A frame with a hand-written header and data, for corruptions encode refuses to make. */
function rawFrame(header: object | string, data: Buffer, declaredLength?: number): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(declaredLength ?? json.length);
  return Buffer.concat([Buffer.from('KDC1'), len, json, data]);
}

describe('chunk frames', () => {
  it('round-trip every chunk of a package, the short last one included', () => {
    const parts = [0, 1, 2].map((i) => decodeChunkFrame(frameOf(i)));
    expect(Buffer.concat(parts.map((p) => p.data)).equals(tar)).toBe(true);
    expect(parts[2]?.header).toMatchObject({ sha256: tarSha, index: 2, count: 3, offset: 8192, size: 10_000 - 8192 });
    expect(parts[0]?.header.chunkSha256).toBe(createHash('sha256').update(tar.subarray(0, 4096)).digest('hex'));
  });

  it('lays the frame out as KDC1, uint32 BE header length, JSON header, data', () => {
    const frame = frameOf(1);
    expect(frame.subarray(0, 4).toString('latin1')).toBe('KDC1');
    const headerLength = frame.readUInt32BE(4);
    const header = JSON.parse(frame.subarray(8, 8 + headerLength).toString('utf8')) as { size: number };
    expect(header.size).toBe(4096);
    expect(frame.length).toBe(8 + headerLength + 4096);
  });

  it('decodes from a Uint8Array view at an offset inside a larger buffer', () => {
    const frame = frameOf(0);
    const big = new Uint8Array(frame.length + 10);
    big.set(frame, 5);
    expect(decodeChunkFrame(big.subarray(5, 5 + frame.length)).header.index).toBe(0);
  });

  it('keeps unknown header fields', () => {
    const data = Buffer.from('hello');
    const chunkSha256 = createHash('sha256').update(data).digest('hex');
    const frame = rawFrame({ sha256: tarSha, index: 0, count: 1, offset: 0, size: 5, chunkSha256, codec: 'none' }, data);
    expect(decodeChunkFrame(frame).header).toMatchObject({ codec: 'none' });
  });

  it('refuses a bad magic', () => {
    const frame = frameOf(0);
    frame.write('KDC2', 0, 'latin1');
    frameError(frame, /bad magic "KDC2"/);
  });

  it('refuses a header length past the end or past the bound', () => {
    const frame = frameOf(0);
    const headerLength = frame.readUInt32BE(4);
    frameError(frame.subarray(0, 8 + headerLength - 1), /header length \d+ runs past the end of the \d+-byte frame/);
    frame.writeUInt32BE(MAX_CHUNK_HEADER_BYTES, 4);
    frameError(frame.subarray(0, 1000), new RegExp(`header length ${MAX_CHUNK_HEADER_BYTES} runs past the end`));
    frame.writeUInt32BE(0xffffffff, 4);
    frameError(frame, new RegExp(`outside 1\\.\\.${MAX_CHUNK_HEADER_BYTES}`));
    frame.writeUInt32BE(0, 4);
    frameError(frame, /outside 1\.\./);
  });

  it('refuses truncated frames', () => {
    const frame = frameOf(0);
    frameError(frame.subarray(0, 6), /shorter than the 8-byte preamble/);
    frameError(frame.subarray(0, 20), /runs past the end/);
    frameError(frame.subarray(0, frame.length - 1), /says 4096 bytes but 4095 follow \(truncated\)/);
  });

  it('refuses bytes past the chunk', () => {
    frameError(Buffer.concat([frameOf(0), Buffer.from([0])]), /1 bytes follow the 4096-byte chunk/);
  });

  it('refuses a chunk whose bytes do not match chunkSha256', () => {
    const frame = frameOf(1);
    frame[frame.length - 1] ^= 0xff;
    const err = frameError(frame, /chunk 1 hashes to [0-9a-f]{64}, not chunkSha256/);
    expect(err.field).toBe('chunkSha256');
  });

  it('refuses a header that is not JSON or breaks the schema, naming the field', () => {
    frameError(rawFrame('{"sha256":', Buffer.alloc(0)), /header is not UTF-8 JSON/);
    const data = Buffer.from('x');
    const chunkSha256 = createHash('sha256').update(data).digest('hex');
    const ok = { sha256: tarSha, index: 0, count: 1, offset: 0, size: 1, chunkSha256 };
    expect(frameError(rawFrame({ ...ok, sha256: 'nope' }, data), /header\.sha256: expected 64 lower-case hex/).field).toBe('sha256');
    frameError(rawFrame({ ...ok, index: 1 }, data), /header\.index: expected an index below count/);
    frameError(rawFrame({ ...ok, size: -1 }, data), /header\.size: expected a number >= 0/);
    frameError(rawFrame([1, 2], data), /header: expected object|header\.\(root\)/);
  });

  it('refuses a chunk larger than the limit before hashing it', () => {
    frameError(frameOf(0), /size 4096 is more than the 1000 bytes allowed/, { maxChunkBytes: 1000 });
  });

  it('checks its own arguments', () => {
    expect(() => encodeChunkFrame({ sha256: 'x', index: 0, count: 1, offset: 0 }, Buffer.from('a'))).toThrow(/header\.sha256/);
    expect(() => encodeChunkFrame({ sha256: tarSha, index: 3, count: 3, offset: 0 }, Buffer.from('a'))).toThrow(RangeError);
    expect(() => decodeChunkFrame('KDC1' as unknown as Uint8Array)).toThrow(TypeError);
  });
});
