/**
 * Domains of the synthetic shapes set: the same classes, shape colours and labels seen by another
 * camera, for domain-shift experiments (a student trained on one domain, devices seeing another; issue
 * 16). One number, the shift (0 = domain a, today's images), sets how far every effect goes, so a
 * milder or stronger domain is one more registry entry.
 */
import type { Rng } from './rng.js';

/**
 * The domains by name. `shift` scales every effect of {@link backgroundTextureSvg},
 * {@link domainRadiusScale}, {@link domainBlurSigma} and {@link applyDomainLight}; `salt` is appended to
 * each image's seed tuple so a domain's scenes are unrelated to another's at the same `--seed` (a B
 * hold-out written with seed 0 shares no layout with the A training set of seed 0).
 */
export const SYNTH_DOMAINS = {
  a: { shift: 0, salt: [] as number[], look: 'the images as always' },
  // Measured with the issue-15 models trained on domain a (easy2k, seed 0; 256 easy val images of seed
  // 11 each): yolov5n mAP50-95 0.454 at shift 0 (b's scenes) → 0.377 at 0.6, 0.254 at 0.8, 0.108 at 1;
  // yolov5s 0.663 → 0.578, 0.419, 0.143. 0.8 loses about 40 %: a clear gap, far from useless. At 0.8
  // the lighting alone gives 0.280 (n); texture, noise and blur alone cost nothing, smaller shapes 0.01.
  b: {
    shift: 0.8, salt: [0xd0b],
    look: 'another site\'s camera: dim, low-contrast, washed-out warm light with vignetting, a mottled floor texture, sensor noise, slight blur, shapes a fifth smaller',
  },
} as const;

/** A key of {@link SYNTH_DOMAINS}. */
export type SynthDomain = keyof typeof SYNTH_DOMAINS;

/** The domain names, `a` first. */
export const SYNTH_DOMAIN_NAMES = Object.keys(SYNTH_DOMAINS) as SynthDomain[];

/** One line per domain, `name: look`, for help texts. */
export function describeSynthDomains(): string {
  return SYNTH_DOMAIN_NAMES.map((n) => `${n}: ${SYNTH_DOMAINS[n].look}`).join('; ');
}

/** Looks a domain up by name; an unknown name is a RangeError naming the valid ones. */
export function synthDomain(name: string, where = 'domain'): (typeof SYNTH_DOMAINS)[SynthDomain] {
  if (!Object.hasOwn(SYNTH_DOMAINS, name)) {
    throw new RangeError(`${where}: unknown domain '${name}', expected one of ${SYNTH_DOMAIN_NAMES.join(', ')}`);
  }
  return SYNTH_DOMAINS[name as SynthDomain];
}

/** How much smaller shapes are drawn under a shift: ×1 at 0, ×0.75 at 1 (radius). */
export function domainRadiusScale(shift: number): number {
  return 1 - 0.25 * shift;
}

/**
 * A tinted fractal-noise texture (a worn floor or concrete: blotches about 10–25 px across at 128 px,
 * with finer grain) over the background gradient, at an opacity of 0.6 × shift. Smooth, so it makes no
 * edges that look like a shape's.
 */
export function backgroundTextureSvg(rng: Rng, size: number, shift: number): string {
  const freq = (rng.uniform(0.04, 0.1) * 128) / size;
  const seed = rng.int(0, 99999);
  // Mid-grey noise (about 0.5 ± 0.15 per channel) stretched ×2.5 around 0.5 and tinted.
  const tint = [rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2)];
  const row = (t: number) => `${(0.83 * t).toFixed(3)} ${(0.83 * t).toFixed(3)} ${(0.83 * t).toFixed(3)} 0 ${(-0.75 * t).toFixed(3)}`;
  return `<filter id="tx" x="0" y="0" width="100%" height="100%" color-interpolation-filters="sRGB">` +
    `<feTurbulence type="fractalNoise" baseFrequency="${freq.toFixed(4)}" numOctaves="4" seed="${seed}"/>` +
    `<feColorMatrix type="matrix" values="${row(tint[0]!)} ${row(tint[1]!)} ${row(tint[2]!)} 0 0 0 0 1"/></filter>` +
    `<rect width="${size}" height="${size}" filter="url(#tx)" opacity="${(0.6 * shift).toFixed(3)}"/>`;
}

/** The lens blur of a shifted domain, a Gaussian sigma in pixels (0: none): 0.4–0.8 × shift. */
export function domainBlurSigma(rng: Rng, shift: number): number {
  const sigma = shift * rng.uniform(0.4, 0.8);
  // sharp refuses sigmas under 0.3; that little blur would not show anyway.
  return sigma >= 0.3 ? sigma : 0;
}

/**
 * The lighting and sensor of a shifted domain `s`, in place on RGB bytes: the range squeezed from 0–255
 * to 20·s – 255·(1 − 0.5…0.65·s) (darker, lower contrast), colours 40 %·s of the way to grey, a warm cast
 * (green down 5–15 %·s, blue 30–45 %·s), a vignette darkening by up to 45 %·s away from an off-centre
 * light, then Gaussian noise of sigma 4–9 × s grey levels per channel. Each image draws its own exposure,
 * cast, light and noise in those ranges, as a camera's auto-exposure would.
 */
export function applyDomainLight(data: Uint8Array, size: number, rng: Rng, shift: number): void {
  const floor = 20 * shift;
  const top = 255 * (1 - shift * rng.uniform(0.5, 0.65));
  const cast = [1, 1 - shift * rng.uniform(0.05, 0.15), 1 - shift * rng.uniform(0.3, 0.45)];
  const grey = 0.4 * shift;
  const vignette = 0.45 * shift;
  const lx = size * rng.uniform(0.25, 0.75), ly = size * rng.uniform(0.25, 0.75);
  const noise = shift * rng.uniform(4, 9);
  const span = (top - floor) / 255;
  const far = size * size * 0.5;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const light = 1 - vignette * Math.min(1, ((x - lx) ** 2 + (y - ly) ** 2) / far);
      const p = (y * size + x) * 3;
      const luma = 0.299 * data[p]! + 0.587 * data[p + 1]! + 0.114 * data[p + 2]!;
      for (let c = 0; c < 3; c++) {
        const v = (floor + span * light * (data[p + c]! + grey * (luma - data[p + c]!))) * cast[c]! + noise * rng.normal();
        data[p + c] = Math.min(255, Math.max(0, Math.round(v)));
      }
    }
  }
}
