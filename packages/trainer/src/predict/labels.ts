import type { Detection } from '@kd-edge/core';

/** Python's `'%g' % v`: 6 significant digits, trailing zeros dropped, exponent form below 1e-4 or from 1e6. */
export function formatG(v: number): string {
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  const [mant, e] = v.toExponential(5).split('e') as [string, string];
  const exp = Number(e);
  const strip = (s: string) => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (exp < -4 || exp >= 6) return `${strip(mant)}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return strip(v.toFixed(5 - exp));
}

/**
 * YOLO label lines for detections in original pixels: `cls cx cy w h` normalised to the image
 * (`[height, width]`), `conf` appended when `saveConf`, as detect.py and val.py `--save-txt` write them.
 */
export function yoloLabelLines(dets: readonly Detection[], shape: readonly [number, number], saveConf: boolean): string[] {
  const [h, w] = shape;
  return dets.map(({ box: [x1, y1, x2, y2], cls, score }) => {
    const vals = [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h];
    return [String(cls), ...vals.map(formatG), ...(saveConf ? [formatG(score)] : [])].join(' ');
  });
}

/** One entry of a COCO results file (pycocotools `loadRes`). */
export interface CocoResult {
  image_id: number | string;
  category_id: number;
  /** [x, y, width, height], top-left corner, original pixels. */
  bbox: [number, number, number, number];
  score: number;
}

/** The COCO image id of a file stem: an integer when the stem is all digits (val.py), else the stem. */
export function cocoImageId(stem: string): number | string {
  return /^\d+$/.test(stem) ? Number.parseInt(stem, 10) : stem;
}

const round = (v: number, d: number): number => Math.round(v * 10 ** d) / 10 ** d;

/** COCO results for one image's detections (original pixels), rounded as val.py `save_one_json` rounds. */
export function cocoResults(imageId: number | string, dets: readonly Detection[]): CocoResult[] {
  return dets.map(({ box: [x1, y1, x2, y2], cls, score }) => ({
    image_id: imageId,
    category_id: cls,
    bbox: [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
    score: round(score, 5),
  }));
}
