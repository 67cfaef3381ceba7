import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChunkDownloader, type ChunkDownloaderOptions, type ChunkProgress } from '../src/transfer/chunk-download.js';
import { modelBytes } from './store-helpers.js';
import { exists, failure } from './transfer-helpers.js';

const CHUNK = 1000;
const FILE = modelBytes(25_500, 5); // 26 chunks, the last one 500 bytes
const SHA = createHash('sha256').update(FILE).digest('hex');
const COUNT = 26;

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * A stand-in for the fleet's chunk topic: serves requested chunks from a buffer on a later tick,
 * and can drop, corrupt or stop answering. `attempt` counts the requests of one index, from 1.
 */
class FakeFleet {
  readonly requests: number[][] = [];
  readonly asked = new Map<number, number>();
  maxOutstanding = 0;
  #outstanding = new Set<number>();
  drop: (index: number, attempt: number) => boolean = () => false;
  corrupt: (index: number, attempt: number) => boolean = () => false;
  silent = false;
  target: ChunkDownloader | undefined;

  constructor(readonly file: Buffer = FILE) {}

  request = (indexes: number[]): void => {
    this.requests.push([...indexes]);
    for (const i of indexes) {
      const attempt = (this.asked.get(i) ?? 0) + 1;
      this.asked.set(i, attempt);
      this.#outstanding.add(i);
      this.maxOutstanding = Math.max(this.maxOutstanding, this.#outstanding.size);
      if (this.silent || this.drop(i, attempt)) continue;
      const data = Buffer.from(this.file.subarray(i * CHUNK, (i + 1) * CHUNK));
      const chunkSha256 = sha(data);
      if (this.corrupt(i, attempt)) data[0] ^= 0xff;
      setImmediate(() => {
        this.#outstanding.delete(i);
        void this.target?.accept({ index: i, offset: i * CHUNK, data, chunkSha256, sha256: sha(this.file), count: COUNT });
      });
    }
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-chunks-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function downloader(fleet: FakeFleet, extra: Partial<ChunkDownloaderOptions> = {}): ChunkDownloader {
  const dl = new ChunkDownloader({ dest: join(dir, 'pkg.tar'), sha256: SHA, size: FILE.length, chunkSize: CHUNK, request: fleet.request, timeoutMs: 40, ...extra });
  fleet.target = dl;
  return dl;
}

describe('ChunkDownloader', () => {
  it('asks for every chunk once within the window, assembles, verifies and renames', async () => {
    const fleet = new FakeFleet();
    const dl = downloader(fleet, { window: 5, timeoutMs: 60_000 });
    const progress: ChunkProgress[] = [];
    dl.on('progress', (p) => progress.push(p));
    const r = await dl.run();
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
    expect(r).toMatchObject({ resumedChunks: 0, requested: COUNT, corrupt: 0 });
    expect([...fleet.asked.values()].every((n) => n === 1)).toBe(true);
    expect(fleet.maxOutstanding).toBeLessThanOrEqual(5);
    expect(progress.at(-1)).toEqual({ bytes: FILE.length, total: FILE.length, chunks: COUNT, count: COUNT, corrupt: 0 });
    expect(await exists(join(dir, 'pkg.tar.part'))).toBe(false);
    expect(await exists(join(dir, 'pkg.tar.chunks.json'))).toBe(false);
  });

  it('asks again for chunks that do not arrive in time', async () => {
    const fleet = new FakeFleet();
    fleet.drop = (i, attempt) => i % 4 === 1 && attempt === 1;
    const r = await downloader(fleet, { timeoutMs: 60 }).run();
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
    // On a loaded machine an answered chunk may time out too; the dropped ones must have been asked for again.
    for (const i of [1, 5, 9, 13, 17, 21, 25]) expect(fleet.asked.get(i)).toBeGreaterThanOrEqual(2);
    expect(r.requested).toBeGreaterThanOrEqual(COUNT + 7);
  });

  it('discards a corrupt chunk, counts it and asks for it again', async () => {
    const fleet = new FakeFleet();
    fleet.corrupt = (i, attempt) => i === 3 && attempt === 1;
    const dl = downloader(fleet, { timeoutMs: 60_000 });
    const corrupt: number[] = [];
    dl.on('corrupt', (c) => corrupt.push(c.index));
    const r = await dl.run();
    expect(corrupt).toEqual([3]);
    expect(r.corrupt).toBe(1);
    expect(fleet.asked.get(3)).toBe(2);
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
  });

  it('after a restart asks only for the chunks it lacks', async () => {
    const fleet = new FakeFleet();
    fleet.drop = (i) => i >= 12;
    const first = downloader(fleet, { timeoutMs: 60_000, window: 8 });
    const run1 = first.run();
    await new Promise<void>((resolve) => first.on('progress', (p) => p.chunks === 12 && resolve()));
    first.stop();
    expect((await failure(run1)).code).toBe('TRANSFER_ABORTED');
    expect(JSON.parse(await readFile(join(dir, 'pkg.tar.chunks.json'), 'utf8'))).toMatchObject({ sha256: SHA, count: COUNT });

    const again = new FakeFleet();
    const r = await downloader(again, { timeoutMs: 60_000 }).run();
    expect(r.resumedChunks).toBe(12);
    expect([...again.asked.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: COUNT - 12 }, (_, k) => k + 12));
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
  });

  it('starts clean when the saved bitmap was made with another chunk size', async () => {
    const fleet = new FakeFleet();
    fleet.drop = (i) => i >= 5;
    const first = downloader(fleet, { timeoutMs: 60_000 });
    const run1 = first.run();
    await new Promise<void>((resolve) => first.on('progress', (p) => p.chunks === 5 && resolve()));
    first.stop();
    await failure(run1);

    const asked: number[][] = [];
    const dl = new ChunkDownloader({ dest: join(dir, 'pkg.tar'), sha256: SHA, size: FILE.length, chunkSize: 500, request: (ix) => void asked.push(ix) });
    expect(dl.count).toBe(51);
    const run2 = dl.run();
    await new Promise<void>((resolve) => dl.once('request', () => resolve()));
    expect(dl.received).toBe(0);
    expect(asked[0]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    dl.stop();
    await failure(run2);
  });

  it('gives up with TRANSFER_TIMEOUT after the retries, keeping what it has', async () => {
    const fleet = new FakeFleet();
    fleet.drop = (i) => i === 7;
    const err = await failure(downloader(fleet, { retries: 2, timeoutMs: 50 }).run());
    expect(err.code).toBe('TRANSFER_TIMEOUT');
    expect(err.message).toMatch(/chunk 7 .* 3 requests/);
    expect(fleet.asked.get(7)).toBe(3);
    const saved = JSON.parse(await readFile(join(dir, 'pkg.tar.chunks.json'), 'utf8')) as { have: string };
    const bits = Buffer.from(saved.have, 'base64');
    expect(bits[0] & (1 << 7)).toBe(0);
    expect(bits[0] & 1).toBe(1);
  });

  it('waits twice as long before each re-request (a slow fleet is not a lost chunk)', async () => {
    const fleet = new FakeFleet();
    fleet.drop = (i) => i === 7;
    const t0 = performance.now();
    const err = await failure(downloader(fleet, { retries: 3, timeoutMs: 100 }).run());
    expect(err.code).toBe('TRANSFER_TIMEOUT');
    expect(fleet.asked.get(7)).toBe(4);
    // 100 + 200 + 400 + 800 ms of waiting at least; a fixed timeout would have given up after 400
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1500);
  });

  it('refuses the assembled file when it does not match the package hash, and deletes it', async () => {
    const fleet = new FakeFleet(modelBytes(FILE.length, 6)); // self-consistent chunks of another file
    const dl = downloader(fleet, { timeoutMs: 60_000 });
    // The other file's frames carry its own sha256; leave it out so they reach the chunk checks.
    const origAccept = dl.accept.bind(dl);
    dl.accept = (f) => origAccept({ ...f, sha256: undefined });
    const err = await failure(dl.run());
    expect(err.code).toBe('TRANSFER_HASH_MISMATCH');
    for (const f of ['pkg.tar', 'pkg.tar.part', 'pkg.tar.chunks.json']) expect(await exists(join(dir, f))).toBe(false);
  });

  it('ignores frames of another package and reports duplicates and bad shapes', async () => {
    const fleet = new FakeFleet();
    fleet.silent = true;
    const dl = downloader(fleet, { timeoutMs: 60_000 });
    // Frames count only once the downloader has loaded its state and asked for chunks (a fixed sleep raced a busy machine).
    const asked = once(dl, 'request');
    const run = dl.run();
    await asked;
    const data = FILE.subarray(0, CHUNK);
    expect(await dl.accept({ index: 0, offset: 0, data, chunkSha256: sha(data), sha256: '0'.repeat(64) })).toBe('ignored');
    expect(await dl.accept({ index: 0, offset: 0, data, chunkSha256: sha(data) })).toBe('stored');
    expect(await dl.accept({ index: 0, offset: 0, data, chunkSha256: sha(data) })).toBe('duplicate');
    expect(await dl.accept({ index: 1, offset: 0, data, chunkSha256: sha(data) })).toBe('corrupt');
    const d2 = FILE.subarray(2 * CHUNK, 3 * CHUNK);
    const header = { sha256: SHA, index: 2, count: COUNT, offset: 2 * CHUNK, size: CHUNK, chunkSha256: sha(d2) };
    expect(await dl.accept({ header, data: d2 })).toBe('stored'); // core decodeChunkFrame's shape
    expect(await dl.accept({ index: 99, offset: 0, data, chunkSha256: sha(data) })).toBe('corrupt');
    dl.stop();
    expect((await failure(run)).code).toBe('TRANSFER_ABORTED');
  });
});
