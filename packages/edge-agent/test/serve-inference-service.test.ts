import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DetectionsLimiter } from '../src/serve/detections-limiter.js';
import { Detector } from '../src/serve/detector.js';
import { InferenceService, type DetectionsPayload } from '../src/serve/inference-service.js';
import { ModelSlot } from '../src/serve/model-slot.js';
import { ReplaySource } from '../src/serve/replay-source.js';
import { constantDetectorModel, picturePng, tempDir, writeConstantDetector } from './fixtures/serve/models.js';

let dir: string;
let frames: string;
let remove: () => Promise<void>;
let slot: ModelSlot<Detector>;

beforeEach(async () => {
  ({ dir, remove } = await tempDir());
  frames = join(dir, 'frames');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(frames);
  const file = await writeConstantDetector(dir, 'a.onnx', 32, [[16, 16, 16, 8, 0.9, 0.1, 0.8]], 2);
  slot = new ModelSlot(await Detector.open(file, constantDetectorModel(32, 1, ['cat', 'dog'], '1.0.0')));
});
afterEach(async () => {
  await slot.close();
  await remove();
});

describe('InferenceService', () => {
  it('turns frames into detections messages, reports a bad image and carries on', async () => {
    await writeFile(join(frames, '0.png'), await picturePng(64, 32, 1));
    await writeFile(join(frames, '1.png'), Buffer.from('this is not a PNG'));
    await writeFile(join(frames, '2.png'), await picturePng(32, 64, 2));
    const published: DetectionsPayload[] = [];
    const serial: unknown[] = [];
    const service = new InferenceService({
      source: new ReplaySource({ dir: frames, fps: Infinity, name: 'cam0' }),
      slot,
      deviceId: 'dev-1',
      publish: (m) => {
        published.push(m);
      },
      serial: { write: (m) => serial.push(m) > 0 },
      maxPerSecond: Infinity,
    });
    const errors: { seq: number; code: unknown }[] = [];
    service.on('frameError', ({ frame, error }) => errors.push({ seq: frame.seq, code: (error as { code?: unknown }).code }));
    let stopped = 0;
    service.on('stopped', () => stopped++);
    await service.run();

    expect(errors).toEqual([{ seq: 1, code: 'SERVE_IMAGE_DECODE' }]);
    expect(stopped).toBe(1);
    expect(published).toHaveLength(2);
    expect(serial).toEqual(published);
    const [first, second] = published;
    expect(first).toMatchObject({
      v: 1, type: 'detections', deviceId: 'dev-1',
      frame: { source: 'cam0', width: 64, height: 32, seq: 0 },
      model: { name: 'constant', version: '1.0.0' },
    });
    expect(Number.isNaN(Date.parse(first.ts))).toBe(false);
    expect(first.latencyMs).toBeGreaterThan(0);
    expect(first.detections).toHaveLength(1);
    expect(first.detections[0]).toMatchObject({ cls: 1, name: 'dog', score: expect.closeTo(0.72, 5) });
    expect(first.detections[0].box.map(Math.round)).toEqual([16, 8, 48, 24]);
    expect(second.frame).toEqual({ source: 'cam0', width: 32, height: 64, seq: 2 });
    expect(first.skipped).toBeUndefined();
    expect(service.stats).toMatchObject({ frames: 2, errors: 1, published: 2, skipped: 0 });
  });

  it('rate-limits publish (not the serial line), reports skipped frames, and follows a model swap', async () => {
    for (let i = 0; i < 3; i++) await writeFile(join(frames, `${i}.png`), await picturePng(40, 40, i));
    const fileB = await writeConstantDetector(dir, 'b.onnx', 32, [[8, 8, 4, 4, 0.9, 0.9, 0.1]], 2);
    const detectorB = await Detector.open(fileB, constantDetectorModel(32, 1, ['cat', 'dog'], '2.0.0'));
    const source = new ReplaySource({ dir: frames, fps: Infinity, loop: true });
    // A clock that moves 250 ms per frame: at 2 per second every other frame is published.
    let t = 0;
    const limiter = new DetectionsLimiter({ maxPerSecond: 2, now: () => (t += 250) });
    const published: DetectionsPayload[] = [];
    let serialLines = 0;
    const service = new InferenceService({
      source, slot, deviceId: 'dev-1', limiter,
      publish: async (m) => {
        published.push(m);
        if (published.length === 2) throw new Error('broker gone');
      },
      serial: { write: () => ++serialLines > 0 },
    });
    const publishErrors: string[] = [];
    service.on('publishError', ({ error }) => publishErrors.push(error.message));
    service.on('frame', ({ frame }) => {
      if (frame.seq === 5) void slot.swap(detectorB);
      if (frame.seq >= 19) void service.stop();
    });
    await service.run();

    expect(serialLines).toBe(20);
    expect(published).toHaveLength(10);
    expect(published[0].skipped).toBeUndefined();
    expect(published.slice(1).every((m) => m.skipped === 1)).toBe(true);
    expect(publishErrors).toEqual(['broker gone']);
    // Published: even frames. The swap after frame 5 holds from frame 6 on.
    expect(published.map((m) => m.frame.seq)).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    expect(published.map((m) => m.model.version)).toEqual(['1.0.0', '1.0.0', '1.0.0', ...Array(7).fill('2.0.0')]);
    expect(published[published.length - 1].detections[0]).toMatchObject({ cls: 0, name: 'cat' });
    expect(service.stats).toMatchObject({ frames: 20, errors: 0, published: 10, skipped: 10 });
    expect(service.stats.fps).toBeGreaterThan(0);
  });

  it('counts frames without a model as errors', async () => {
    await writeFile(join(frames, '0.png'), await picturePng(8, 8));
    await slot.swap(undefined);
    const service = new InferenceService({ source: new ReplaySource({ dir: frames, fps: Infinity }), slot, deviceId: 'd', publish: () => {} });
    const codes: unknown[] = [];
    service.on('frameError', ({ error }) => codes.push((error as { code?: unknown }).code));
    await service.run();
    expect(codes).toEqual(['SERVE_NO_MODEL']);
  });
});
