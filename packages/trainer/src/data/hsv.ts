/**
 * HSV colour jitter with ultralytics' maths (utils/augmentations.py augment_hsv): gains
 * r = 1 + U(-1, 1)·[hsv_h, hsv_s, hsv_v], applied through lookup tables to OpenCV's 8-bit HSV
 * (hue in 0..179), hue multiplied modulo 180, saturation and value multiplied and clipped.
 * The RGB↔HSV conversions follow OpenCV's 8-bit cvtColor formulas.
 */

const HSV_SHIFT = 12;
const SDIV = new Int32Array(256);
const HDIV = new Int32Array(256);
for (let i = 1; i < 256; i++) {
  SDIV[i] = Math.round((255 << HSV_SHIFT) / i);
  HDIV[i] = Math.round((180 << HSV_SHIFT) / (6 * i));
}
const ROUND = 1 << (HSV_SHIFT - 1);
// Which of (v, p, q, t) becomes r, g, b in each hue sector (OpenCV's sector_data, reordered to RGB).
const SECTOR_RGB = [
  [0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2],
] as const;

/** The three gains ultralytics draws for one image, or null when all hyperparameters are zero. */
export function hsvGains(next: () => number, hgain: number, sgain: number, vgain: number): [number, number, number] | null {
  if (!hgain && !sgain && !vgain) return null;
  return [
    (next() * 2 - 1) * hgain + 1,
    (next() * 2 - 1) * sgain + 1,
    (next() * 2 - 1) * vgain + 1,
  ];
}

/** Applies HSV gains to packed RGB uint8 pixels in place. */
export function applyHsv(rgb: Uint8Array, gains: [number, number, number]): void {
  const lutH = new Uint8Array(256);
  const lutS = new Uint8Array(256);
  const lutV = new Uint8Array(256);
  for (let x = 0; x < 256; x++) {
    // numpy's astype(uint8) truncates.
    lutH[x] = Math.floor((x * gains[0]) % 180);
    lutS[x] = Math.floor(Math.min(255, Math.max(0, x * gains[1])));
    lutV[x] = Math.floor(Math.min(255, Math.max(0, x * gains[2])));
  }
  const tab = new Float64Array(4);
  for (let i = 0; i < rgb.length; i += 3) {
    const r = rgb[i]!, g = rgb[i + 1]!, b = rgb[i + 2]!;
    const v = Math.max(r, g, b);
    const diff = v - Math.min(r, g, b);
    const s = (diff * SDIV[v]! + ROUND) >> HSV_SHIFT;
    let h: number;
    if (v === r) h = g - b;
    else if (v === g) h = b - r + 2 * diff;
    else h = r - g + 4 * diff;
    h = (h * HDIV[diff]! + ROUND) >> HSV_SHIFT;
    if (h < 0) h += 180;

    const h2 = lutH[h]!;
    const s2 = lutS[s]! / 255;
    const v2 = lutV[v]! / 255;
    if (s2 === 0) {
      const c = Math.round(v2 * 255);
      rgb[i] = c; rgb[i + 1] = c; rgb[i + 2] = c;
      continue;
    }
    let hh = (h2 * 6) / 180;
    let sector = Math.floor(hh);
    hh -= sector;
    if (sector >= 6 || sector < 0) { sector = 0; hh = 0; }
    tab[0] = v2;
    tab[1] = v2 * (1 - s2);
    tab[2] = v2 * (1 - s2 * hh);
    tab[3] = v2 * (1 - s2 * (1 - hh));
    const sec = SECTOR_RGB[sector]!;
    rgb[i] = Math.round(tab[sec[0]]! * 255);
    rgb[i + 1] = Math.round(tab[sec[1]]! * 255);
    rgb[i + 2] = Math.round(tab[sec[2]]! * 255);
  }
}
