/**
 * The pixel normalisation of classifiers: ultralytics YOLOv5 v7.0 trains and runs its -cls models on
 * ImageNet-normalised RGB (`classify_transforms`, `classify_albumentations`), and its ONNX exports take
 * that input as they are. kd-trainer does the same, and writes what it did into every classifier export
 * (metadata `normalisation`) so that a consumer knows what to apply.
 */

/** `input = (pixel · scale − mean[c]) / std[c]`, per RGB channel (the package manifest's form). */
export interface Normalisation {
  scale: number;
  mean: number[];
  std: number[];
}

/** ImageNet mean and standard deviation of RGB in 0..1 (ultralytics IMAGENET_MEAN / IMAGENET_STD). */
export const IMAGENET_NORMALISATION: Readonly<Normalisation> = Object.freeze({
  scale: 1 / 255,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
});

/** Pixels in 0..1, nothing subtracted: what kd-edge detectors take. */
export const UNIT_NORMALISATION: Readonly<Normalisation> = Object.freeze({ scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] });

/** The ONNX metadata key (and .kdw meta key) holding a {@link Normalisation} as JSON. */
export const NORMALISATION_KEY = 'normalisation';

/** The metadata entry of a normalisation: `{ normalisation: '{"scale":…,"mean":[…],"std":[…]}' }`. */
export function normalisationMetadata(n: Readonly<Normalisation>): Record<string, string> {
  return { [NORMALISATION_KEY]: JSON.stringify({ scale: n.scale, mean: [...n.mean], std: [...n.std] }) };
}

/**
 * Reads a normalisation from metadata text or a meta object: three finite means, three positive
 * standard deviations, a positive scale. Throws RangeError naming what is wrong.
 */
export function parseNormalisation(value: unknown): Normalisation {
  let v = value;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      throw new RangeError(`${NORMALISATION_KEY}: ${JSON.stringify(value)} is not JSON`);
    }
  }
  const o = (v ?? {}) as Partial<Normalisation>;
  const three = (a: unknown, ok: (x: number) => boolean): a is number[] => Array.isArray(a) && a.length === 3 && a.every((x) => typeof x === 'number' && ok(x));
  if (!(typeof o.scale === 'number' && o.scale > 0) || !three(o.mean, Number.isFinite) || !three(o.std, (x) => x > 0)) {
    throw new RangeError(`${NORMALISATION_KEY}: expected {scale > 0, mean: 3 numbers, std: 3 numbers > 0}, got ${JSON.stringify(v)}`);
  }
  return { scale: o.scale, mean: [...o.mean], std: [...o.std] };
}
