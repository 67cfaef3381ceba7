/**
 * A procedural classification dataset in ultralytics' classify layout (`ROOT/train/<class>/*`,
 * `ROOT/val/<class>/*`): one coloured shape per image, the class is its kind. Size, position, rotation
 * and colour vary, on the detection set's backgrounds; `hard` adds small, low-contrast shapes, lines
 * across them, noise and blur. Rendered by sharp from SVG; deterministic for a seed.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { Rng } from './rng.js';
import { backgroundSvg, hsl, lineSvg, type SynthDifficulty, type SynthOptions } from './synth.js';
import { applyDomainLight, domainBlurSigma, domainRadiusScale, synthDomain } from './synth-domain.js';
import { SHAPE_KINDS, shapeSvg, type Shape, type ShapeKind } from './synth-shapes.js';

/**
 * Options of {@link synthesizeClassifyDataset}: those of the detection set; `out` is the dataset ROOT (its
 * train/ and val/ are replaced), and `train`/`val` are totals spread evenly over the classes.
 */
export type SynthClassifyOptions = SynthOptions;

/**
 * Renders one image of a shape of `kind`, as RGB bytes size×size. `easy`: one shape 44–104 px across at
 * 128 px (a third to four fifths of the side: classification photos frame their object, and ultralytics'
 * random crops of 8–100 % of the area must still show part of it), saturated, on a plain gradient (at
 * most one line behind it). `hard`: 24–88 px across, colours of any saturation, the detection set's
 * cluttered background, one to three lines drawn across the shape, 40 % of images with noise and 30 %
 * blurred. A domain's `shift` ({@link SYNTH_DOMAINS}; 0 is domain a) changes the look as in the detection set.
 */
export async function renderClassifyImage(rng: Rng, size: number, kind: ShapeKind, difficulty: SynthDifficulty = 'hard', shift = 0): Promise<Uint8Array> {
  const easy = difficulty === 'easy';
  const k = size / 128;
  const parts = backgroundSvg(rng, size, difficulty, shift);
  const r = (easy ? rng.uniform(22, 52) : rng.uniform(12, 44)) * k * domainRadiusScale(shift);
  const upright = kind === 'square' || kind === 'diamond';
  const shape: Shape = {
    kind, r,
    cx: rng.uniform(r, size - r), cy: rng.uniform(r, size - r),
    angle: upright ? rng.uniform(-0.3, 0.3) : rng.uniform(0, 2 * Math.PI),
    color: easy ? hsl(rng.next(), rng.uniform(0.6, 1), rng.uniform(0.35, 0.65)) : hsl(rng.next(), rng.uniform(0.2, 1), rng.uniform(0.25, 0.75)),
  };
  parts.push(shapeSvg(shape));
  if (!easy) for (let i = rng.int(1, 3); i > 0; i--) parts.push(lineSvg(rng, size));
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}">${parts.join('')}</svg>`;
  const blurred = !easy && rng.chance(0.3);
  const noisy = !easy && rng.chance(0.4);
  const sigma = rng.uniform(0.5, 1.2);
  const noise = rng.uniform(4, 14);
  const lens = shift > 0 ? domainBlurSigma(rng, shift) : 0;
  let pipeline = sharp(Buffer.from(svg)).removeAlpha();
  if (blurred || lens > 0) pipeline = pipeline.blur(lens === 0 ? sigma : Math.hypot(blurred ? sigma : 0, lens));
  const { data } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (noisy) {
    for (let i = 0; i < data.length; i++) data[i] = Math.min(255, Math.max(0, Math.round(data[i]! + noise * rng.normal())));
  }
  if (shift > 0) applyDomainLight(data, size, rng, shift);
  return data;
}

/** How many of `total` images each of `nc` classes gets: as even as possible, the first classes one more. */
export function perClassCounts(total: number, nc: number): number[] {
  return Array.from({ length: nc }, (_, c) => Math.floor(total / nc) + (c < total % nc ? 1 : 0));
}

/**
 * Writes a synthetic classification dataset: `out/{train,val}/<shape>/<split>_<n>.jpg|png` (a fifth
 * PNG), with `train` and `val` images in total spread evenly over the classes.
 * @example
 * const { root, names } = await synthesizeClassifyDataset({ out: 'datasets/shapes-cls', train: 600, val: 150, imgsz: 64, classes: 6 });
 */
export async function synthesizeClassifyDataset(options: SynthClassifyOptions): Promise<{ root: string; names: string[] }> {
  const { train = 512, val = 128, imgsz = 128, classes = 6, seed = 0, difficulty = 'hard', domain = 'a' } = options;
  const { shift, salt } = synthDomain(domain, 'synthesizeClassifyDataset');
  if (!Number.isInteger(classes) || classes < 1 || classes > SHAPE_KINDS.length) {
    throw new RangeError(`synthesizeClassifyDataset: classes must be an integer in 1..${SHAPE_KINDS.length}, got ${classes}`);
  }
  if (!Number.isInteger(imgsz) || imgsz < 32) throw new RangeError(`synthesizeClassifyDataset: imgsz must be an integer >= 32, got ${imgsz}`);
  const kinds = options.shapes ?? SHAPE_KINDS.slice(0, classes);
  for (const kd of kinds) {
    if (!(SHAPE_KINDS as readonly string[]).includes(kd)) throw new RangeError(`synthesizeClassifyDataset: shape '${kd}' is not one of ${SHAPE_KINDS.join(', ')}`);
  }
  if (kinds.length === 0 || new Set(kinds).size !== kinds.length) throw new RangeError('synthesizeClassifyDataset: shapes must be distinct and at least one');
  for (const [name, v] of [['train', train], ['val', val]] as const) {
    if (!Number.isInteger(v) || v < kinds.length) throw new RangeError(`synthesizeClassifyDataset: ${name} must be an integer >= the class count ${kinds.length} (every class folder needs an image), got ${v}`);
  }
  const root = resolve(options.out);
  for (const [split, total, splitId] of [['train', train, 1], ['val', val, 2]] as const) {
    await rm(join(root, split), { recursive: true, force: true });
    const jobs: { kind: ShapeKind; i: number }[] = [];
    perClassCounts(total, kinds.length).forEach((count, c) => {
      for (let j = 0; j < count; j++) jobs.push({ kind: kinds[c]!, i: jobs.length });
    });
    for (const kind of kinds) await mkdir(join(root, split, kind), { recursive: true });
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(4, jobs.length) }, async () => {
      while (next < jobs.length) {
        const { kind, i } = jobs[next++]!;
        const rng = Rng.derive(seed, splitId, i, 0xc1a5, ...salt);
        const png = rng.chance(0.2);
        const data = await renderClassifyImage(rng, imgsz, kind, difficulty, shift);
        const enc = sharp(data, { raw: { width: imgsz, height: imgsz, channels: 3 } });
        const file = join(root, split, kind, `${split}_${String(i).padStart(5, '0')}.${png ? 'png' : 'jpg'}`);
        await (png ? enc.png() : enc.jpeg({ quality: 90 })).toFile(file);
      }
    }));
  }
  return { root, names: [...kinds] };
}
