import { open, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryWatchSource } from '../src/serve/directory-watch-source.js';
import type { Frame, FrameSource } from '../src/serve/frame-source.js';
import { ReplaySource } from '../src/serve/replay-source.js';
import { picturePng, tempDir } from './fixtures/serve/models.js';

let dir: string;
let remove: () => Promise<void>;
beforeEach(async () => {
  ({ dir, remove } = await tempDir());
});
afterEach(async () => remove());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Iterates `source` in the background; `until(n)` waits (up to 5 s) for n frames. */
function collect(source: FrameSource): { frames: Frame[]; until: (n: number) => Promise<void>; done: Promise<void> } {
  const frames: Frame[] = [];
  const done = (async () => {
    for await (const f of source) frames.push(f);
  })();
  const until = async (n: number): Promise<void> => {
    const end = Date.now() + 20_000;
    while (frames.length < n && Date.now() < end) await sleep(10);
  };
  return { frames, until, done };
}

describe('DirectoryWatchSource', () => {
  it.each([
    ['fs.watch', true],
    ['polling only', false],
  ])('delivers new images once, in order, ignoring old, hidden and other files (%s)', async (_label, useWatch) => {
    const old = await picturePng(16, 16, 1);
    await writeFile(join(dir, 'old.png'), old);
    const source = new DirectoryWatchSource({ dir, settleMs: 40, pollMs: 50, watch: useWatch, name: 'cam0' });
    await source.start();
    const c = collect(source);
    const a = await picturePng(20, 10, 2);
    const b = await picturePng(10, 20, 3);
    await writeFile(join(dir, 'a.PNG'), a);
    await writeFile(join(dir, 'notes.txt'), 'not an image');
    await writeFile(join(dir, '.b.png.part'), b);
    await sleep(120);
    await rename(join(dir, '.b.png.part'), join(dir, 'b.png'));
    await c.until(2);
    await sleep(150); // nothing more may arrive
    await source.close();
    await c.done;
    expect(c.frames.map((f) => [f.source, f.seq, f.file])).toEqual([
      ['cam0', 0, join(dir, 'a.PNG')],
      ['cam0', 1, join(dir, 'b.png')],
    ]);
    expect(c.frames[0].data.equals(a)).toBe(true);
    expect(c.frames[1].data.equals(b)).toBe(true);
  });

  it('waits for a file being written to settle and takes a rewrite under the same name as a new frame', async () => {
    const source = new DirectoryWatchSource({ dir, settleMs: 200, pollMs: 50, includeExisting: true });
    const c = collect(source);
    const full = await picturePng(64, 64, 5);
    const fh = await open(join(dir, 'slow.png'), 'w');
    // Four chunks 40 ms apart: never still for settleMs until the end.
    const step = Math.ceil(full.length / 4);
    for (let i = 0; i < full.length; i += step) {
      await fh.write(full.subarray(i, i + step));
      await sleep(40);
    }
    await fh.close();
    await c.until(1);
    expect(c.frames).toHaveLength(1);
    expect(c.frames[0].data.equals(full)).toBe(true);

    // The camera writes latest.png again: a new frame.
    const again = await picturePng(32, 32, 6);
    await writeFile(join(dir, 'slow.png'), again);
    await c.until(2);
    await source.close();
    await c.done;
    expect(c.frames).toHaveLength(2);
    expect(c.frames[1].data.equals(again)).toBe(true);
  });

  it('removes files after reading when asked, drops the oldest past maxQueue, and ends on close', async () => {
    for (let i = 0; i < 5; i++) await writeFile(join(dir, `f${i}.jpg`), Buffer.from([0xff, 0xd8, i]));
    const source = new DirectoryWatchSource({ dir, settleMs: 0, pollMs: 30, includeExisting: true, removeAfterRead: true, maxQueue: 2 });
    const dropped: string[] = [];
    source.on('dropped', (d) => dropped.push(`${d.reason}:${d.file.slice(dir.length + 1)}`));
    // Scan once before anyone reads, so that all five are queued at the same time.
    await source.start();
    await sleep(100);
    const c = collect(source);
    await c.until(2);
    await sleep(100);
    await source.close();
    await c.done;
    expect(c.frames.map((f) => f.data[2])).toEqual([3, 4]);
    expect(dropped).toEqual(['queue-full:f0.jpg', 'queue-full:f1.jpg', 'queue-full:f2.jpg']);
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(dir)).sort()).toEqual(['f0.jpg', 'f1.jpg', 'f2.jpg']);
  });
});

describe('ReplaySource', () => {
  it('replays a folder in name order at the set rate and ends', async () => {
    for (const [i, n] of ['c.jpg', 'a.png', 'b.webp', 'skip.txt'].entries()) await writeFile(join(dir, n), Buffer.from([i]));
    const source = new ReplaySource({ dir, fps: 100, name: 'replay' });
    const frames: Frame[] = [];
    for await (const f of source) frames.push(f);
    expect(frames.map((f) => [f.seq, f.file?.slice(dir.length + 1), f.data[0]])).toEqual([
      [0, 'a.png', 1],
      [1, 'b.webp', 2],
      [2, 'c.jpg', 0],
    ]);
    expect(frames.every((f) => f.source === 'replay')).toBe(true);
  });

  it('loops until closed and stops at once while waiting for the next frame', async () => {
    await writeFile(join(dir, 'a.png'), Buffer.from([1]));
    await writeFile(join(dir, 'b.png'), Buffer.from([2]));
    const source = new ReplaySource({ dir, fps: 200, loop: true });
    const seen: number[] = [];
    for await (const f of source) {
      seen.push(f.data[0]);
      if (f.seq === 6) break;
    }
    expect(seen).toEqual([1, 2, 1, 2, 1, 2, 1]);

    // A slow rate: close() ends the pending wait.
    const slow = new ReplaySource({ dir, fps: 0.01, loop: true });
    const c = collect(slow);
    await c.until(1);
    await slow.close();
    await c.done;
    expect(c.frames).toHaveLength(1);
  });

  it('refuses bad options', () => {
    expect(() => new ReplaySource({ dir, fps: 0 })).toThrow(RangeError);
    expect(() => new ReplaySource({ dir, extensions: ['png'] })).toThrow(/extensions/);
    expect(() => new DirectoryWatchSource({ dir, settleMs: -1 })).toThrow(/settleMs/);
  });
});
