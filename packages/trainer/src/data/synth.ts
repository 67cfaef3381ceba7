/**
 * A procedural detection dataset in YOLO layout, for tests, examples and benchmarks: coloured
 * shapes (class = shape kind) of several sizes on cluttered backgrounds, some overlapping, some
 * images noisy or blurred, some with no object at all. Rendered by sharp from SVG; deterministic
 * for a seed.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { stringify } from 'yaml';
import { Rng } from './rng.js';
import {
  SYNTH_DOMAIN_NAMES, SYNTH_DOMAINS, applyDomainLight, backgroundTextureSvg, domainBlurSigma, domainRadiusScale, synthDomain, type SynthDomain,
} from './synth-domain.js';
import { SHAPE_KINDS, insideTest, shapeSvg, type Shape, type ShapeKind } from './synth-shapes.js';

/** Options of {@link synthesizeDataset}. */
export interface SynthOptions {
  /** Output folder (created). */
  out: string;
  /** Training images; default 512. */
  train?: number;
  /** Validation images; default 128. */
  val?: number;
  /** Image side in pixels; default 128. */
  imgsz?: number;
  /** Number of classes (shape kinds), 1..12; default 6. */
  classes?: number;
  /** The shape kinds, in class order (overrides `classes`): a set of other classes than the default's. */
  shapes?: readonly ShapeKind[];
  /** `hard` (default): clutter, small shapes, noise and blur; `easy`: {@link SynthDifficulty}. */
  difficulty?: SynthDifficulty;
  /**
   * The camera and site the images come from ({@link SYNTH_DOMAINS}): `a` (default) as always, `b` darker,
   * noisier, textured and with smaller shapes; same classes and labels. Other domains draw unrelated
   * scenes at the same seed.
   */
  domain?: SynthDomain;
  seed?: number;
}

/**
 * How hard the images are. `hard`: cluttered backgrounds (lines, blurred blobs), a third of the shapes
 * 6–12 px across at 128 px, up to 6 shapes, 30 % noisy and 20 % blurred images: even a yolov5s learns
 * it slowly (mAP50 ≈ 0.2 after 30 epochs). `easy`: a plain gradient background with at most one line,
 * 1–4 shapes of 16–52 px at 128 px, no noise or blur: a set on which small models learn within 30
 * epochs, for comparing training recipes (distillation) where the models' gap shows.
 */
export type SynthDifficulty = 'hard' | 'easy';

/** One rendered image before encoding: RGB pixels, the shapes drawn and their labels. */
export interface SynthImage {
  data: Uint8Array;
  size: number;
  shapes: Shape[];
  /** Rows [cls, cx, cy, w, h] normalised: tight boxes of each shape's visible pixels, same order as `shapes`. */
  labels: number[][];
  noisy: boolean;
  blurred: boolean;
}

const MAX_OCCLUDED = 0.5;

/** An RGB colour from hue, saturation and lightness in 0..1. */
export function hsl(h: number, s: number, l: number): [number, number, number] {
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => {
    const k = (n + h * 12) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

const rgb = (c: [number, number, number]) => `rgb(${c.join(',')})`;

/**
 * The SVG of a synthetic background: a low-saturation gradient (under a shifted domain's texture when
 * `shift` > 0), then (hard) up to two blurred blobs and one to five thin lines, or (easy) at most one
 * line; none of it is an object.
 */
export function backgroundSvg(rng: Rng, size: number, difficulty: SynthDifficulty, shift = 0): string[] {
  const easy = difficulty === 'easy';
  const bg1 = hsl(rng.next(), rng.uniform(0, 0.3), rng.uniform(0.25, 0.8));
  const bg2 = hsl(rng.next(), rng.uniform(0, 0.3), rng.uniform(0.25, 0.8));
  const parts: string[] = [
    `<defs><linearGradient id="g" x1="${rng.next().toFixed(2)}" y1="0" x2="${rng.next().toFixed(2)}" y2="1">` +
      `<stop offset="0" stop-color="${rgb(bg1)}"/><stop offset="1" stop-color="${rgb(bg2)}"/></linearGradient>` +
      `<filter id="b" x="-50%" y="-50%" width="200%" height="200%"><feGaussianBlur stdDeviation="${(size * 0.05).toFixed(1)}"/></filter></defs>`,
    `<rect width="${size}" height="${size}" fill="url(#g)"/>`,
  ];
  if (shift > 0) parts.push(backgroundTextureSvg(rng, size, shift));
  for (let i = easy ? 0 : rng.int(0, 2); i > 0; i--) {
    parts.push(`<ellipse cx="${rng.uniform(0, size).toFixed(1)}" cy="${rng.uniform(0, size).toFixed(1)}" rx="${rng.uniform(0.1, 0.3) * size}" ry="${rng.uniform(0.05, 0.2) * size}" ` +
      `fill="${rgb(hsl(rng.next(), 0.5, rng.uniform(0.3, 0.7)))}" opacity="0.5" filter="url(#b)"/>`);
  }
  for (let i = easy ? rng.int(0, 1) : rng.int(1, 5); i > 0; i--) parts.push(lineSvg(rng, size));
  return parts;
}

/** A thin straight line of a random colour across the image (clutter). */
export function lineSvg(rng: Rng, size: number): string {
  const p = () => rng.uniform(0, size).toFixed(1);
  return `<line x1="${p()}" y1="${p()}" x2="${p()}" y2="${p()}" stroke="${rgb(hsl(rng.next(), rng.uniform(0, 0.6), rng.uniform(0.2, 0.8)))}" stroke-width="${rng.uniform(0.6, 1.6).toFixed(1)}"/>`;
}

/** Draws a shape radius: a third small (6–12 px diameter at 128 px), the rest medium or large; easy: 16–52 px. */
function drawRadius(rng: Rng, size: number, difficulty: SynthDifficulty = 'hard'): number {
  const k = size / 128;
  if (difficulty === 'easy') return rng.uniform(8, 26) * k;
  const u = rng.next();
  if (u < 0.33) return rng.uniform(3, 6) * k;
  if (u < 0.78) return rng.uniform(6, 16) * k;
  return rng.uniform(16, 28) * k;
}

/**
 * Renders one synthetic image. Shapes are placed so that no earlier shape loses more than half of
 * its pixels to later ones; each label is the box of the pixels where its shape is on top. `shift`
 * is a domain's ({@link SYNTH_DOMAINS}): 0 draws domain a's images, anything else also draws from `rng`.
 */
export async function renderSynthImage(
  rng: Rng, size: number, classes: number | readonly ShapeKind[], background = false, difficulty: SynthDifficulty = 'hard', shift = 0,
): Promise<SynthImage> {
  const easy = difficulty === 'easy';
  const kinds: readonly ShapeKind[] = typeof classes === 'number' ? SHAPE_KINDS.slice(0, classes) : classes;
  // Background: a low-saturation gradient, thin lines and blurred blobs that are not objects.
  const parts = backgroundSvg(rng, size, difficulty, shift);
  const scale = domainRadiusScale(shift);

  // Placement with an id raster (pixel centres) to control occlusion and measure visible boxes.
  const owner = new Int16Array(size * size).fill(-1);
  const shapes: Shape[] = [];
  const total: number[] = [];
  const visible: number[] = [];
  const want = background ? 0 : rng.int(1, easy ? 4 : 6);
  for (let attempt = 0; shapes.length < want && attempt < want * 10; attempt++) {
    const r = drawRadius(rng, size, difficulty) * scale;
    const kind = kinds[rng.int(0, kinds.length - 1)]!;
    const upright = kind === 'square' || kind === 'diamond';
    const shape: Shape = {
      kind, r,
      cx: rng.uniform(r, size - r), cy: rng.uniform(r, size - r),
      angle: upright ? rng.uniform(-0.3, 0.3) : rng.uniform(0, 2 * Math.PI),
      color: hsl(rng.next(), rng.uniform(0.6, 1), rng.uniform(0.35, 0.65)),
    };
    const inside = insideTest(shape);
    const x0 = Math.max(0, Math.floor(shape.cx - r)), x1 = Math.min(size, Math.ceil(shape.cx + r));
    const y0 = Math.max(0, Math.floor(shape.cy - r)), y1 = Math.min(size, Math.ceil(shape.cy + r));
    const covered: number[] = [];
    const lost = new Map<number, number>();
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        if (!inside(x + 0.5, y + 0.5)) continue;
        const p = y * size + x;
        covered.push(p);
        const o = owner[p]!;
        if (o >= 0) lost.set(o, (lost.get(o) ?? 0) + 1);
      }
    }
    if (covered.length < 4) continue;
    if ([...lost].some(([o, n]) => visible[o]! - n < (1 - MAX_OCCLUDED) * total[o]!)) continue;
    const id = shapes.length;
    for (const p of covered) owner[p] = id;
    for (const [o, n] of lost) visible[o]! -= n;
    shapes.push(shape);
    total.push(covered.length);
    visible.push(covered.length);
    parts.push(shapeSvg(shape));
  }
  const box = shapes.map(() => [Infinity, Infinity, -Infinity, -Infinity]);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = owner[y * size + x]!;
      if (o < 0) continue;
      const b = box[o]!;
      b[0] = Math.min(b[0]!, x); b[1] = Math.min(b[1]!, y); b[2] = Math.max(b[2]!, x + 1); b[3] = Math.max(b[3]!, y + 1);
    }
  }
  const labels = shapes.map((s, i) => {
    const [x1, y1, x2, y2] = box[i]!;
    return [kinds.indexOf(s.kind), (x1! + x2!) / 2 / size, (y1! + y2!) / 2 / size, (x2! - x1!) / size, (y2! - y1!) / size];
  });

  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}">${parts.join('')}</svg>`;
  const blurred = !easy && rng.chance(0.2);
  const noisy = !easy && rng.chance(0.3);
  const sigma = rng.uniform(0.5, 1.0);
  const noise = rng.uniform(3, 10);
  const lens = shift > 0 ? domainBlurSigma(rng, shift) : 0;
  let pipeline = sharp(Buffer.from(svg)).removeAlpha();
  // sharp keeps one blur per pipeline: a hard image's blur and a domain's lens blur add in quadrature.
  if (blurred || lens > 0) pipeline = pipeline.blur(lens === 0 ? sigma : Math.hypot(blurred ? sigma : 0, lens));
  const { data } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (noisy) {
    for (let i = 0; i < data.length; i++) data[i] = Math.min(255, Math.max(0, Math.round(data[i]! + noise * rng.normal())));
  }
  if (shift > 0) applyDomainLight(data, size, rng, shift);
  return { data, size, shapes, labels, noisy: noisy || shift > 0, blurred: blurred || lens > 0 };
}

/** Runs `fn` over 0..n-1 with at most `limit` calls in flight. */
async function pool(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, n) }, async () => {
    while (next < n) await fn(next++);
  }));
}

/**
 * Writes a synthetic dataset: `out/images/{train,val}/*.jpg|png`, `out/labels/{train,val}/*.txt`
 * and `out/data.yaml` (path relative to the YAML). About 8 % of images are backgrounds (empty label
 * file) and 20 % are PNG.
 * @example
 * const { yaml } = await synthesizeDataset({ out: '/tmp/shapes', seed: 1 });
 */
export async function synthesizeDataset(options: SynthOptions): Promise<{ yaml: string; names: string[] }> {
  const { train = 512, val = 128, imgsz = 128, classes = 6, seed = 0, domain = 'a' } = options;
  const { shift, salt } = synthDomain(domain, 'synthesizeDataset');
  if (!Number.isInteger(classes) || classes < 1 || classes > SHAPE_KINDS.length) {
    throw new RangeError(`synthesizeDataset: classes must be an integer in 1..${SHAPE_KINDS.length}, got ${classes}`);
  }
  if (!Number.isInteger(imgsz) || imgsz < 32) throw new RangeError(`synthesizeDataset: imgsz must be an integer >= 32, got ${imgsz}`);
  for (const [k, v] of [['train', train], ['val', val]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`synthesizeDataset: ${k} must be an integer >= 0, got ${v}`);
  }
  const kinds = options.shapes ?? SHAPE_KINDS.slice(0, classes);
  for (const k of kinds) {
    if (!(SHAPE_KINDS as readonly string[]).includes(k)) throw new RangeError(`synthesizeDataset: shape '${k}' is not one of ${SHAPE_KINDS.join(', ')}`);
  }
  if (kinds.length === 0 || new Set(kinds).size !== kinds.length) throw new RangeError('synthesizeDataset: shapes must be distinct and at least one');
  const out = resolve(options.out);
  const names = [...kinds] as string[];
  for (const [split, count, splitId] of [['train', train, 1], ['val', val, 2]] as const) {
    const imgDir = join(out, 'images', split), lblDir = join(out, 'labels', split);
    await mkdir(imgDir, { recursive: true });
    await mkdir(lblDir, { recursive: true });
    await pool(count, 4, async (i) => {
      const rng = Rng.derive(seed, splitId, i, ...salt);
      const png = rng.chance(0.2);
      const img = await renderSynthImage(rng, imgsz, kinds, rng.chance(0.08), options.difficulty ?? 'hard', shift);
      const stem = `${split}_${String(i).padStart(5, '0')}`;
      const enc = sharp(img.data, { raw: { width: imgsz, height: imgsz, channels: 3 } });
      await (png ? enc.png() : enc.jpeg({ quality: 90 })).toFile(join(imgDir, `${stem}.${png ? 'png' : 'jpg'}`));
      const text = img.labels.map(([c, ...xywh]) => `${c} ${xywh.map((v) => v!.toFixed(6)).join(' ')}`).join('\n');
      await writeFile(join(lblDir, `${stem}.txt`), text ? `${text}\n` : '');
    });
  }
  const yaml = join(out, 'data.yaml');
  // Domain a keeps the header it always had, so its files stay byte-identical.
  const look = domain === 'a' ? '' : `, domain ${domain} of ${SYNTH_DOMAIN_NAMES.join('|')}: ${SYNTH_DOMAINS[domain].look}`;
  await writeFile(yaml, `# Synthetic shapes written by kd-trainer (seed ${seed}${options.difficulty === 'easy' ? ', easy' : ''}${look}); path is relative to this file.\n` +
    stringify({ path: '.', train: 'images/train', val: 'images/val', nc: names.length, names }));
  return { yaml, names };
}
