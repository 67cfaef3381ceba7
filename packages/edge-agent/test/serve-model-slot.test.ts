import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Detector } from '../src/serve/detector.js';
import { ModelSlot, type SlotDetector } from '../src/serve/model-slot.js';
import { constantDetectorModel, solidPng, tempDir, writeConstantDetector } from './fixtures/serve/models.js';

let dir: string;
let remove: () => Promise<void>;
let fileA: string;
let fileB: string;

beforeAll(async () => {
  ({ dir, remove } = await tempDir());
  // Model A always sees a "cat" (class 0), model B a "dog" (class 1), at different places.
  fileA = await writeConstantDetector(dir, 'a.onnx', 32, [[10, 10, 8, 8, 0.9, 0.9, 0.1]], 2);
  fileB = await writeConstantDetector(dir, 'b.onnx', 32, [[20, 20, 8, 8, 0.9, 0.1, 0.9]], 2);
});
afterAll(async () => remove());

/** A detector that records when it is disposed and whether it ran after that. */
class Tracked implements SlotDetector {
  disposedAt = -1;
  ranAfterDispose = false;
  inFlight = 0;
  disposedWhileInFlight = false;
  constructor(readonly inner: Detector, readonly tag: 'A' | 'B', private readonly clock: { t: number }) {}
  async detect(...args: Parameters<Detector['detect']>): ReturnType<Detector['detect']> {
    if (this.disposedAt >= 0) this.ranAfterDispose = true;
    this.inFlight++;
    try {
      return await this.inner.detect(...args);
    } finally {
      this.inFlight--;
    }
  }
  async dispose(): Promise<void> {
    if (this.inFlight > 0) this.disposedWhileInFlight = true;
    this.disposedAt = this.clock.t++;
    await this.inner.dispose();
  }
}

describe('ModelSlot', () => {
  it('hot-swaps 20 times under a tight inference loop without a failed call', async () => {
    const clock = { t: 0 };
    const model = constantDetectorModel(32, 1, ['cat', 'dog']);
    const open = async (tag: 'A' | 'B'): Promise<Tracked> => new Tracked(await Detector.open(tag === 'A' ? fileA : fileB, model), tag, clock);
    const image = await solidPng(48, 32, [90, 120, 150]);
    const first = await open('A');
    const slot = new ModelSlot<Tracked>(first);
    const all: Tracked[] = [first];
    const swapEvents: number[] = [];
    slot.on('swap', (e) => swapEvents.push(e.generation));

    let stop = false;
    let calls = 0;
    const failures: unknown[] = [];
    const mismatches: string[] = [];
    // Three loops keep several inferences in flight across every swap.
    const loop = async (): Promise<void> => {
      while (!stop) {
        try {
          const r = await slot.infer(image);
          calls++;
          const expected = r.detector.tag === 'A' ? 0 : 1;
          if (r.detections.length !== 1 || r.detections[0].cls !== expected) mismatches.push(`${r.detector.tag}: ${JSON.stringify(r.detections)}`);
        } catch (e) {
          failures.push(e);
        }
      }
    };
    const loops = [loop(), loop(), loop()];

    let tag: 'A' | 'B' = 'A';
    for (let i = 0; i < 20; i++) {
      tag = tag === 'A' ? 'B' : 'A';
      const next = await open(tag);
      all.push(next);
      const callsBefore = calls;
      const retired = slot.swap(next);
      // The very next inference after a swap runs on the new model.
      const after = await slot.infer(image);
      expect(after.detector).toBe(next);
      expect(after.detections.map((d) => d.name)).toEqual([tag === 'A' ? 'cat' : 'dog']);
      await retired;
      // Let the loops run a little on each model.
      while (calls < callsBefore + 3) await new Promise((r) => setImmediate(r));
    }
    stop = true;
    await Promise.all(loops);

    expect(failures).toEqual([]);
    expect(mismatches).toEqual([]);
    expect(calls).toBeGreaterThan(60);
    expect(swapEvents).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // Every retired detector was disposed once it was idle, never while running, and never used afterwards.
    for (const d of all.slice(0, -1)) {
      expect(d.disposedAt).toBeGreaterThanOrEqual(0);
      expect(d.disposedWhileInFlight).toBe(false);
      expect(d.ranAfterDispose).toBe(false);
    }
    const last = all[all.length - 1];
    expect(last.disposedAt).toBe(-1);
    await slot.close();
    expect(last.disposedAt).toBeGreaterThanOrEqual(0);
    await expect(slot.infer(image)).rejects.toMatchObject({ code: 'SERVE_CLOSED' });
    expect(() => slot.swap(last)).toThrow(/closed/);
  });

  it('keeps a retired detector alive until its slow inference ends', async () => {
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const result = { detections: [], timings: { preMs: 0, inferMs: 0, postMs: 0 }, width: 1, height: 1 };
    const slow: SlotDetector = {
      detect: async () => {
        await gate;
        order.push('slow done');
        return result;
      },
      dispose: async () => {
        order.push('slow disposed');
      },
    };
    const fast: SlotDetector = { detect: async () => result, dispose: async () => {} };
    const slot = new ModelSlot(slow);
    const running = slot.infer(new Uint8Array(1));
    const retired = slot.swap(fast);
    expect(slot.current).toBe(fast);
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([]);
    release();
    await expect(running).resolves.toMatchObject({ detector: slow });
    // the caller of the last inference goes on (e.g. starts its next one) before the release runs
    order.push('caller continues');
    await retired;
    expect(order).toEqual(['slow done', 'caller continues', 'slow disposed']);
  });

  it('reports an empty slot as SERVE_NO_MODEL and a failed dispose as an event', async () => {
    const slot = new ModelSlot();
    await expect(slot.infer(new Uint8Array(1))).rejects.toMatchObject({ code: 'SERVE_NO_MODEL' });
    const broken: SlotDetector = {
      detect: async () => ({ detections: [], timings: { preMs: 0, inferMs: 0, postMs: 0 }, width: 1, height: 1 }),
      dispose: async () => {
        throw new Error('native release failed');
      },
    };
    const errors: string[] = [];
    slot.on('disposeError', (e) => errors.push(e.error.message));
    await slot.swap(broken);
    await slot.swap(undefined);
    expect(errors).toEqual(['native release failed']);
    expect(slot.generation).toBe(2);
  });
});
