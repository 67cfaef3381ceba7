import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ANCHORS, exportOnnx } from '@kd-edge/core';
import { resolveOptions, TRAIN_SCHEMA } from '../src/config.js';
import { bestPossibleRecall } from '../src/data/autoanchor.js';
import { loadModelWeights } from '../src/model/weights-io.js';
import type { YoloDescription } from '../src/model/types.js';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';
import { train } from '../src/train/trainer.js';
import { memoryLogger } from '../src/util/logger.js';

/** 16 images of 128×96 px with thin, tall poles (4–6 px wide, 60–90 px tall): YOLOv5's default anchors fit them badly. */
async function poles(root: string): Promise<string> {
  for (const split of ['train', 'val']) {
    mkdirSync(join(root, 'images', split), { recursive: true });
    mkdirSync(join(root, 'labels', split), { recursive: true });
    for (let i = 0; i < (split === 'train' ? 16 : 4); i++) {
      const w = 4 + (i % 3), h = 60 + (i * 7) % 31, x = 10 + (i * 13) % 100, y = 2;
      const svg = `<svg width="128" height="96"><rect width="128" height="96" fill="#777"/><rect x="${x}" y="${y}" width="${w}" height="${h}" fill="#fff"/></svg>`;
      await sharp(Buffer.from(svg)).png().toFile(join(root, 'images', split, `${i}.png`));
      writeFileSync(join(root, 'labels', split, `${i}.txt`), `0 ${(x + w / 2) / 128} ${(y + h / 2) / 96} ${w / 128} ${h / 96}\n`);
    }
  }
  writeFileSync(join(root, 'data.yaml'), `path: ${root}\ntrain: images/train\nval: images/val\nnames: ['pole']\n`);
  return join(root, 'data.yaml');
}

describe('AutoAnchor before training', () => {
  it('replaces anchors that fit the labels badly; the weights and the exported ONNX carry the new ones', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kd-autoanchor-'));
    const data = await poles(root);
    const log = memoryLogger();
    const { config } = resolveOptions(TRAIN_SCHEMA, [{ data, imgsz: 128, batch_size: 8, epochs: 1, backend: 'wasm', threads: 1, workers: 0, project: join(root, 'runs'), noval: true }]);
    const r = await train(config, HYP_SCRATCH_LOW, { logger: log, maxSteps: 1, progress: { write: () => true } });
    const lines = log.lines.map((l) => l.msg).join('\n');
    expect(lines).toMatch(/AutoAnchor: .* Best Possible Recall \(BPR\)/);
    const { description } = await loadModelWeights(r.last);
    const anchors = (description as YoloDescription).anchors;
    expect(anchors).not.toEqual(DEFAULT_ANCHORS.map((a) => [...a]));
    // The new anchors are tall and thin like the poles, and recall them all.
    const poleWh: number[] = [];
    for (let i = 0; i < 16; i++) poleWh.push((4 + (i % 3)) * 128 / 128, (60 + (i * 7) % 31) * 128 / 128);
    expect(bestPossibleRecall(anchors.flat(), poleWh).bpr).toBeGreaterThan(bestPossibleRecall(DEFAULT_ANCHORS.flat(), poleWh).bpr);
    const onnx = exportOnnx(description as YoloDescription, (await loadModelWeights(r.last)).weights, { imgsz: 128 });
    expect(JSON.parse(onnx.metadataProps.find((e) => e.key === 'anchors')!.value)).toEqual(anchors);

    // --noautoanchor keeps the defaults.
    const { config: keep } = resolveOptions(TRAIN_SCHEMA, [{ ...config, noautoanchor: true, name: 'keep' }]);
    const k = await train(keep, HYP_SCRATCH_LOW, { maxSteps: 1, progress: { write: () => true } });
    expect(((await loadModelWeights(k.last)).description as YoloDescription).anchors).toEqual(DEFAULT_ANCHORS.map((a) => [...a]));
  });
});
