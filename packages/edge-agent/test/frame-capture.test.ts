import { cp, mkdir, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fleetTopics, generateKeyPair, writeKeyPair, type Logger } from '@kd-edge/core';
import sharp from 'sharp';
import { parse as parseYaml } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FrameCapture, type CaptureInput, type FrameCaptureOptions } from '../src/adapt/frame-capture.js';
import { Agent } from '../src/agent.js';
import { loadAgentConfig, validateAgentConfig } from '../src/config/agent-config.js';
import { ModelStore } from '../src/store/model-store.js';
import { makeDetectorPackage } from './fixtures/agent/detector-package.js';
import { picturePng, tempDir } from './fixtures/serve/models.js';
import { observer, startAedes, waitFor } from './mqtt-brokers.js';

const T0 = Date.parse('2026-06-01T12:00:00.000Z');

let root: string;
let remove: () => Promise<void>;
let dir: string;

beforeEach(async () => {
  ({ dir: root, remove } = await tempDir('kd-capture-'));
  dir = join(root, 'capture');
});
afterEach(async () => {
  await remove();
});

/** A real JPEG of `width`×`height`; `seed` changes the pixels (and so the bytes). */
async function jpeg(width = 32, height = 24, seed = 1): Promise<Buffer> {
  const png = await picturePng(width, height, seed);
  return sharp(png).jpeg({ quality: 90 }).toBuffer();
}

/** Random pixels compress badly: a PNG of about width×height×3 bytes. */
async function noisyPng(width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 2654435761) >>> 24;
  return sharp(raw, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
}

/** A minimal 24-bit BMP (what the agent's own decoder reads). */
function bmp(width: number, height: number): Buffer {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const buf = Buffer.alloc(54 + stride * height);
  buf.write('BM', 0, 'latin1');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(54, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(height, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(24, 28);
  return buf;
}

function input(data: Buffer, seq: number, scores: number[] = [], receivedAt = T0 + seq * 1000): CaptureInput {
  return {
    frame: { source: 'cam0', seq, data, receivedAt },
    message: {
      frame: { source: 'cam0', width: 32, height: 24, seq },
      model: { name: 'shapes', version: '1.2.0' },
      detections: scores.map((score, i) => ({ cls: i % 2, name: i % 2 ? 'dog' : 'cat', score, box: [1, 2, 30, 20] as [number, number, number, number] })),
    },
  };
}

async function open(options: Partial<FrameCaptureOptions> = {}): Promise<FrameCapture> {
  // A queue longer than the default 4: most tests offer frames faster than a disk takes them.
  return FrameCapture.open({ dir, everyN: 1, queueSize: 16, ...options });
}

/** Files in the capture folder, sorted. */
async function files(): Promise<string[]> {
  return (await readdir(dir)).sort();
}

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (msg: string): void => void lines.push(`${level} ${msg}`);
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated`), { code });
}

describe('FrameCapture: which frames', () => {
  it('keeps every Nth frame served: the image exactly as received and a sidecar that describes it', async () => {
    const capture = await open({ everyN: 3 });
    const images: Buffer[] = [];
    const reasons = [];
    for (let seq = 0; seq < 7; seq++) {
      images.push(await jpeg(32, 24, seq + 1));
      reasons.push(capture.offer(input(images[seq]!, seq, [0.9])));
    }
    await capture.close();
    expect(reasons).toEqual(['periodic', undefined, undefined, 'periodic', undefined, undefined, 'periodic']);
    const list = await capture.list();
    expect(list.map((e) => e.data.seq)).toEqual([0, 3, 6]);
    for (const e of list) {
      expect(await readFile(e.image)).toEqual(images[e.data.seq]);
      expect(e.image).toMatch(/\/\d{16}\.jpg$/);
      expect(e.sidecar).toBe(e.image.replace(/\.jpg$/, '.json'));
    }
    expect(list[1]!.data).toEqual({
      v: 1,
      id: list[1]!.id,
      image: { file: `${String(list[1]!.id).padStart(16, '0')}.jpg`, format: 'jpeg', bytes: images[3]!.length, width: 32, height: 24 },
      source: 'cam0',
      seq: 3,
      receivedAt: new Date(T0 + 3000).toISOString(),
      reason: 'periodic',
      uncertain: 0,
      model: { name: 'shapes', version: '1.2.0' },
      detections: [{ cls: 0, name: 'cat', score: 0.9, box: [1, 2, 30, 20] }],
    });
    // Names sort in capture order: the ids are the frames' milliseconds.
    expect(list.map((e) => e.id)).toEqual([T0, T0 + 3000, T0 + 6000]);
    expect(await files()).toHaveLength(6);
    expect(capture.stats()).toMatchObject({ offered: 7, kept: 3, count: 3, oldestAt: T0, newestAt: T0 + 6000, pending: 0 });
  });

  it('names each image after its content (JPEG, PNG, WebP, BMP) and drops what is none of them', async () => {
    const png = await picturePng(16, 16);
    const webp = await sharp(png).webp().toBuffer();
    const capture = await open();
    for (const [seq, data] of [await jpeg(), png, webp, bmp(4, 4), Buffer.from('GIF89a not an image we keep')].entries()) capture.offer(input(data, seq));
    await capture.close();
    expect((await capture.list()).map((e) => [e.data.seq, e.data.image.format, e.image.slice(-4)])).toEqual([
      [0, 'jpeg', '.jpg'], [1, 'png', '.png'], [2, 'webp', 'webp'], [3, 'bmp', '.bmp'],
    ]);
    expect(capture.stats().dropped.unknownFormat).toBe(1);
  });

  it('keeps frames with an uncertain detection, [low, high), at most one per interval', async () => {
    let t = 0;
    const capture = await open({ everyN: 1000, uncertainLow: 0.25, uncertainHigh: 0.6, uncertainMinIntervalMs: 60_000, now: () => t });
    const img = await jpeg();
    const offer = (seq: number, scores: number[], at: number): string | undefined => {
      t = at;
      return capture.offer(input(img, seq, scores));
    };
    expect(offer(0, [], 0)).toBe('periodic'); // the first frame is the first of every N
    expect(offer(1, [0.9, 0.61], 1_000)).toBeUndefined(); // sure
    expect(offer(2, [0.95, 0.3, 0.4], 2_000)).toBe('uncertain');
    expect(offer(3, [0.3], 3_000)).toBeUndefined(); // within the interval
    expect(offer(4, [0.3], 61_999)).toBeUndefined();
    expect(offer(5, [0.25], 62_000)).toBe('uncertain'); // low end included
    expect(offer(6, [0.6], 200_000)).toBeUndefined(); // high end excluded
    expect(offer(7, [0.59], 200_001)).toBe('uncertain');
    expect(offer(8, [0.5], 200_002)).toBeUndefined();
    await capture.close();
    const list = await capture.list();
    expect(list.map((e) => [e.data.seq, e.data.reason, e.data.uncertain])).toEqual([[0, 'periodic', 0], [2, 'uncertain', 2], [5, 'uncertain', 1], [7, 'uncertain', 1]]);
  });
});

describe('FrameCapture: bounds', () => {
  it('holds maxFrames by deleting the oldest entries, image and sidecar', async () => {
    const capture = await open({ maxFrames: 3 });
    for (let seq = 0; seq < 5; seq++) capture.offer(input(await jpeg(32, 24, seq + 1), seq));
    await capture.close();
    const list = await capture.list();
    expect(list.map((e) => e.data.seq)).toEqual([2, 3, 4]);
    expect(await files()).toEqual(list.flatMap((e) => [e.image, e.sidecar].map((p) => p.slice(dir.length + 1))).sort());
    expect(capture.stats()).toMatchObject({ kept: 5, evicted: 2, count: 3, oldestAt: T0 + 2000 });
  });

  it('holds maxBytes (images and sidecars) oldest first, and does not keep a frame larger than maxBytes alone', async () => {
    const img = await jpeg(48, 32);
    // The size of one entry, measured on a capture of its own.
    const probe = await FrameCapture.open({ dir: join(root, 'probe'), everyN: 1 });
    probe.offer(input(img, 0));
    await probe.close();
    const entry = probe.stats().bytes;
    expect(entry).toBeGreaterThan(img.length);

    const maxBytes = Math.floor(2.5 * entry);
    const capture = await open({ maxBytes });
    for (let seq = 0; seq < 5; seq++) capture.offer(input(img, seq));
    await capture.idle();
    expect((await capture.list()).map((e) => e.data.seq)).toEqual([3, 4]);
    const onDisk = async (): Promise<number> => {
      let sum = 0;
      for (const name of await files()) sum += (await stat(join(dir, name))).size;
      return sum;
    };
    expect(capture.stats().bytes).toBe(await onDisk());
    expect(capture.stats().bytes).toBeLessThanOrEqual(maxBytes);

    const big = await noisyPng(64, 64);
    expect(big.length).toBeGreaterThan(maxBytes);
    expect(capture.offer(input(big, 5))).toBe('periodic');
    await capture.close();
    expect((await capture.list()).map((e) => e.data.seq)).toEqual([3, 4]);
    expect(capture.stats()).toMatchObject({ kept: 5, evicted: 3, dropped: { tooLarge: 1 } });
  });
});

describe('FrameCapture: restarts and crashes', () => {
  it('rebuilds its index from disk at start, trims to lowered limits, and keeps names growing when the clock goes back', async () => {
    const first = await open({ maxFrames: 10 });
    for (let seq = 0; seq < 5; seq++) first.offer(input(await jpeg(32, 24, seq + 1), seq));
    await first.close();
    const before = await first.list();

    const second = await open({ maxFrames: 2 });
    expect((await second.list()).map((e) => [e.id, e.data.seq])).toEqual(before.slice(3).map((e) => [e.id, e.data.seq]));
    expect(second.recovered.removed).toHaveLength(6);
    expect(await files()).toHaveLength(4);
    expect(second.stats()).toMatchObject({ count: 2, bytes: before[3]!.bytes + before[4]!.bytes, kept: 0 });

    // The clock went back an hour (and the source's seq restarted): the new entry still sorts last.
    second.offer(input(await jpeg(32, 24, 9), 0, [], T0 - 3_600_000));
    await second.close();
    const after = await second.list();
    expect(after.map((e) => e.data.seq)).toEqual([4, 0]);
    expect(after[1]!.id).toBe(before[4]!.id + 1);
    expect(after[1]!.data.receivedAt).toBe(new Date(T0 - 3_600_000).toISOString());
    expect(await files()).toEqual(after.flatMap((e) => [e.image, e.sidecar].map((p) => p.slice(dir.length + 1))).sort());
  });

  it('removes what a crash or kill -9 leaves at start: temporary files, images without sidecars, torn and damaged entries', async () => {
    const first = await open();
    for (let seq = 0; seq < 2; seq++) first.offer(input(await jpeg(32, 24, seq + 1), seq));
    await first.close();
    const good = await first.list();
    const img = await jpeg();
    const leftovers = {
      // a write cut short (core's temporary sibling naming)
      '.0000000000000090.jpg.tmp-0a1b2c3d4e5f': img.subarray(0, 10),
      '.0000000000000091.json.tmp-0a1b2c3d4e5f': '{"v":1',
      // killed between the image's rename and the sidecar's
      '0000000000000050.jpg': img,
      // a sidecar whose image is gone (by hand)
      '0000000000000060.json': JSON.stringify({ v: 1, id: 60, image: { file: '0000000000000060.jpg', bytes: img.length }, receivedAt: new Date(T0).toISOString() }),
      // a power cut after the renames: the image never reached the disk whole
      '0000000000000070.jpg': img,
      '0000000000000070.json': JSON.stringify({ v: 1, id: 70, image: { file: '0000000000000070.jpg', bytes: img.length }, receivedAt: new Date(T0).toISOString() }),
      // a sidecar that does not parse
      '0000000000000080.png': img,
      '0000000000000080.json': '',
    };
    for (const [name, data] of Object.entries(leftovers)) await writeFile(join(dir, name), data);
    await truncate(join(dir, '0000000000000070.jpg'), 100);
    await writeFile(join(dir, 'notes.txt'), 'not ours');

    const log = recordingLogger();
    const second = await open({ logger: log });
    expect(second.recovered.removed.map((p) => p.slice(dir.length + 1)).sort()).toEqual(Object.keys(leftovers).sort());
    expect((await second.list()).map((e) => e.id)).toEqual(good.map((e) => e.id));
    expect(await files()).toEqual([...good.flatMap((e) => [e.image, e.sidecar].map((p) => p.slice(dir.length + 1))), 'notes.txt'].sort());
    expect(log.lines.some((l) => l.startsWith('warn') && l.includes('1 unknown file'))).toBe(true);
    await second.close();
  });
});

describe('FrameCapture: never in the way of serving', () => {
  it('counts a failing disk per error code, logs each kind once, leaves no partial files, and recovers', async () => {
    const failures: Array<[RegExp, string]> = [[/\.jpg\./, 'ENOSPC'], [/\.jpg\./, 'ENOSPC'], [/\.json\./, 'EACCES'], [/\.jpg\./, 'ENOSPC']];
    const log = recordingLogger();
    const capture = await open({
      logger: log,
      writeFile: async (path, data) => {
        const next = failures[0];
        if (next !== undefined && next[0].test(path)) {
          failures.shift();
          throw errnoError(next[1]);
        }
        await writeFile(path, data, { flag: 'wx' });
      },
    });
    const img = await jpeg();
    for (let seq = 0; seq < 4; seq++) expect(() => capture.offer(input(img, seq))).not.toThrow();
    // Bad input is swallowed too: offer runs inside the serving loop's 'frame' event.
    expect(() => capture.offer({} as CaptureInput)).not.toThrow();
    await capture.idle();
    expect(capture.stats()).toMatchObject({ kept: 0, count: 0, errors: { ENOSPC: 3, EACCES: 1 }, dropped: { writeError: 4 } });
    expect(log.lines.filter((l) => l.includes('(ENOSPC)'))).toHaveLength(1);
    expect(log.lines.filter((l) => l.includes('(EACCES)'))).toHaveLength(1);
    // Nothing half-written: the image of the frame whose sidecar failed went too.
    expect(await files()).toEqual([]);

    capture.offer(input(img, 4));
    await capture.idle();
    expect((await capture.list()).map((e) => e.data.seq)).toEqual([4]);
    // After a success, the same error again is news again.
    failures.push([/\.jpg\./, 'ENOSPC']);
    capture.offer(input(img, 5));
    await capture.close();
    expect(log.lines.filter((l) => l.includes('(ENOSPC)'))).toHaveLength(2);
    expect(capture.stats()).toMatchObject({ kept: 1, count: 1, errors: { ENOSPC: 4, EACCES: 1 }, dropped: { writeError: 5 } });
  });

  it('drops and counts frames while its write queue is full', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const capture = await open({
      queueSize: 2,
      writeFile: async (path, data) => {
        await gate;
        await writeFile(path, data, { flag: 'wx' });
      },
    });
    const img = await jpeg();
    for (let seq = 0; seq < 5; seq++) expect(capture.offer(input(img, seq))).toBe('periodic');
    expect(capture.stats()).toMatchObject({ pending: 2, dropped: { queueFull: 3 } });
    release();
    await capture.close();
    expect((await capture.list()).map((e) => e.data.seq)).toEqual([0, 1]);
    expect(capture.stats()).toMatchObject({ kept: 2, pending: 0, dropped: { queueFull: 3 } });
  });

  it('stops capturing below the disk reserve and starts again when there is room', async () => {
    let free = 5_000;
    const log = recordingLogger();
    const capture = await open({ reserveDiskBytes: 8_000, freeBytes: async () => free, logger: log });
    const img = await jpeg();
    capture.offer(input(img, 0));
    capture.offer(input(img, 1));
    await capture.idle();
    expect(capture.stats()).toMatchObject({ kept: 0, dropped: { lowDisk: 2 } });
    expect(log.lines.filter((l) => l.includes('under the reserve'))).toHaveLength(1);
    free = 1e9;
    capture.offer(input(img, 2));
    await capture.close();
    expect((await capture.list()).map((e) => e.data.seq)).toEqual([2]);
  });
});

describe('capture configuration', () => {
  const base = { keys: ['k.pub'], deviceId: 'cam-01' };

  it('is off by default, with the documented defaults, and its uncertain band starts at serve.conf', () => {
    const c = validateAgentConfig(base);
    expect(c.capture).toEqual({
      enabled: false, everyN: 600, uncertainLow: 0.25, uncertainHigh: 0.6, uncertainMinIntervalMs: 300_000,
      maxFrames: 1000, maxBytes: 256 * 1024 * 1024, upload: false,
    });
    expect(validateAgentConfig({ ...base, serve: { conf: 0.3 }, capture: { enabled: true } }).capture.uncertainLow).toBe(0.3);
    expect(validateAgentConfig({ ...base, serve: { conf: 0.3 }, capture: { uncertainLow: 0.35 } }).capture.uncertainLow).toBe(0.35);
  });

  it('names the field of every invalid value', () => {
    const fails = (capture: Record<string, unknown>, serve: Record<string, unknown> = {}): string => {
      try {
        validateAgentConfig({ ...base, serve, capture }, 'agent.yaml');
      } catch (err) {
        expect((err as { code?: string }).code).toBe('AGENT_CONFIG_INVALID');
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(fails({ maxFrames: 0 })).toMatch(/^agent\.yaml: capture\.maxFrames: /);
    expect(fails({ maxBytes: 1.5 })).toMatch(/capture\.maxBytes: /);
    expect(fails({ everyN: 0 })).toMatch(/capture\.everyN: /);
    expect(fails({ uncertainHigh: 1.2 })).toMatch(/capture\.uncertainHigh: /);
    expect(fails({ upload: 'yes' })).toMatch(/capture\.upload: /);
    expect(fails({ uplaod: true })).toMatch(/uplaod/);
    expect(fails({ uncertainLow: 0.6, uncertainHigh: 0.6 })).toMatch(/capture\.uncertainLow: must be below capture\.uncertainHigh/);
    // A band that ends where serving starts can never catch a frame: refused when capture is on.
    expect(fails({ enabled: true }, { conf: 0.7 })).toMatch(/capture\.uncertainHigh: must be above serve\.conf \(0\.7\) and capture\.uncertainLow \(default serve\.conf, 0\.7\), got 0\.6/);
    expect(validateAgentConfig({ ...base, serve: { conf: 0.7 } }).capture.enabled).toBe(false);
  });

  it('shows every key in the shipped example configuration, off', async () => {
    const file = new URL('../../../docker/agent/agent.example.yaml', import.meta.url).pathname;
    const c = await loadAgentConfig({ file });
    expect(c.capture).toMatchObject({ enabled: false, upload: false });
    const shown = (parseYaml(await readFile(file, 'utf8')) as { capture: Record<string, unknown> }).capture;
    expect(Object.keys(shown).sort()).toEqual(Object.keys(c.capture).sort());
  });
});

describe('kd-agent with capture enabled', () => {
  it('keeps served frames from its replay source in <dataDir>/capture and reports them in its status', async () => {
    const key = generateKeyPair();
    const keyFile = join(root, 'fleet.pub');
    await writeKeyPair(key, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
    const pkg = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.0.0', key.privateKeyPem);
    const dataDir = join(root, 'agent');
    // A store with the package active, as a deploy leaves it.
    const store = await ModelStore.open(join(dataDir, 'store'));
    const staging = await store.stagingPath();
    await cp(pkg.dir, staging, { recursive: true });
    await store.activate((await store.install(staging, { name: pkg.name, version: pkg.version, sha256: pkg.sha256 })).key);
    const frames = join(root, 'frames');
    await mkdir(frames);
    const images = [await picturePng(80, 64, 1), await jpeg(64, 48, 2)];
    await writeFile(join(frames, 'a.png'), images[0]!);
    await writeFile(join(frames, 'b.jpg'), images[1]!);

    const broker = await startAedes();
    const fleet = await observer(broker.url);
    const statuses: Array<{ serving?: { capture?: { frames: number; kept: number } } }> = [];
    const topics = fleetTopics('lab');
    fleet.on('message', (_topic, payload) => void statuses.push(JSON.parse(payload.toString()) as (typeof statuses)[number]));
    await fleet.subscribeAsync(topics.status('cam-01'), { qos: 1 });
    const agent = await Agent.start(validateAgentConfig({
      fleet: 'lab', deviceId: 'cam-01', dataDir, keys: [keyFile], runtime: { trtexec: false },
      broker: { url: broker.url, protocolVersion: 4 }, statusIntervalSec: 1,
      serve: { source: { replay: frames, fps: 50, loop: true } },
      capture: { enabled: true, everyN: 2, maxFrames: 4 },
    }), { facts: { deviceTreeModel: join(root, 'absent') } });
    const captureDir = join(dataDir, 'capture');
    try {
      await waitFor('a status with capture figures', () => statuses.some((s) => (s.serving?.capture?.kept ?? 0) >= 5), 60_000);
    } finally {
      await agent.stop();
      await fleet.endAsync(true);
      await broker.close();
    }
    const names = (await readdir(captureDir)).sort();
    expect(names).toHaveLength(8); // maxFrames 4: images and sidecars
    const sidecars = await Promise.all(names.filter((n) => n.endsWith('.json')).map(async (n) => JSON.parse(await readFile(join(captureDir, n), 'utf8')) as {
      seq: number; reason: string; source: string; model: unknown; image: { file: string; format: string };
    }));
    for (const s of sidecars) {
      expect(s).toMatchObject({ source: frames, model: { name: 'shapes', version: '1.0.0' } });
      expect(names).toContain(s.image.file);
      // The replay alternates a.png and b.jpg: the bytes are the source's own.
      expect(await readFile(join(captureDir, s.image.file))).toEqual(images[s.seq % 2]);
      if (s.reason === 'periodic') expect(s.seq % 2).toBe(0);
    }
    expect(sidecars.filter((s) => s.reason === 'uncertain').length).toBeLessThanOrEqual(1);
    expect(sidecars.map((s) => s.seq)).toEqual([...sidecars.map((s) => s.seq)].sort((a, b) => a - b));
    const last = statuses.filter((s) => s.serving?.capture !== undefined).at(-1)!;
    expect(last.serving!.capture).toMatchObject({ frames: 4 });
  }, 120_000);
});
