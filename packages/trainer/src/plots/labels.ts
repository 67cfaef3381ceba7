import { classColor } from '../log/draw-boxes.js';
import { r2 } from '../log/svg.js';
import { Axes, figureSvg, niceTicks, ramp, rgbHex, textWidth, writeSvg, type FigureSize } from './chart.js';

/** labels.jpg's size: 8 × 8 in at 200 dpi, 1600 × 1600 px, as ultralytics'. */
export const LABELS_FIGURE: FigureSize = { widthIn: 8, heightIn: 8, dpi: 200 };

// ultralytics draws the first 1000 boxes in the rectangles panel and bins the 2-D histograms 50 × 50.
const MAX_RECTS = 1000;
const BINS = 50;
// seaborn's bivariate histplot colours: a light ramp to the first colour of the cycle.
const HIST_RAMP = ['#e9f0f6', '#1f77b4'];

/** Counts of a 2-D histogram and the ranges its bins cover. */
export interface Histogram2d {
  counts: Float64Array;
  bins: number;
  xlim: [number, number];
  ylim: [number, number];
}

function limits(v: readonly number[]): [number, number] {
  if (v.length === 0) return [0, 1];
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of v) {
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  if (lo === hi) {
    lo -= 0.05;
    hi += 0.05;
  }
  return [lo, hi];
}

/** A `bins`×`bins` histogram of (x, y) over the data's range; `counts[xBin * bins + yBin]`. */
export function histogram2d(xs: readonly number[], ys: readonly number[], bins = BINS): Histogram2d {
  const xlim = limits(xs);
  const ylim = limits(ys);
  const counts = new Float64Array(bins * bins);
  const bin = (v: number, [lo, hi]: [number, number]) => Math.min(bins - 1, Math.max(0, Math.floor(((v - lo) / (hi - lo)) * bins)));
  xs.forEach((x, i) => { counts[bin(x, xlim) * bins + bin(ys[i]!, ylim)]! += 1; });
  return { counts, bins, xlim, ylim };
}

/**
 * seaborn's `pmax`: the count at which the colour saturates, chosen so that the fullest cells holding
 * a share `1 − pmax` of all counts are drawn at full colour.
 */
export function saturationLevel(counts: ArrayLike<number>, pmax = 0.9): number {
  const sorted = Array.from(counts).sort((a, b) => b - a);
  const total = sorted.reduce((s, v) => s + v, 0);
  if (total === 0) return 1;
  let acc = 0;
  for (const v of sorted) {
    acc += v;
    if (acc / total >= 1 - pmax) return Math.max(v, 1e-9);
  }
  return sorted[sorted.length - 1]!;
}

/** Every label of a split as columns: class, centre x, centre y, width, height (normalised). */
export function labelColumns(labels: readonly Float32Array[]): { cls: number[]; cx: number[]; cy: number[]; w: number[]; h: number[] } {
  const col: number[][] = [[], [], [], [], []];
  for (const l of labels) {
    const n = l.length - (l.length % 5);
    for (let k = 0; k < n; k++) col[k % 5]!.push(l[k]!);
  }
  const [cls, cx, cy, w, h] = col as [number[], number[], number[], number[], number[]];
  return { cls, cx, cy, w, h };
}

function histPanel(h: Histogram2d, ax: Axes, xlabel: string, ylabel: string): string {
  const out: string[] = [];
  const vmax = saturationLevel(h.counts);
  const dx = (h.xlim[1] - h.xlim[0]) / h.bins;
  const dy = (h.ylim[1] - h.ylim[0]) / h.bins;
  for (let i = 0; i < h.bins; i++) {
    for (let j = 0; j < h.bins; j++) {
      const c = h.counts[i * h.bins + j]!;
      if (c === 0) continue;
      const x = ax.px(h.xlim[0] + i * dx);
      const y = ax.py(h.ylim[0] + (j + 1) * dy);
      out.push(`<rect x="${r2(x)}" y="${r2(y)}" width="${r2(ax.px(h.xlim[0] + (i + 1) * dx) - x + 0.2)}" height="${r2(ax.py(h.ylim[0] + j * dy) - y + 0.2)}" fill="${rgbHex(ramp(HIST_RAMP, c / vmax))}"/>`);
    }
  }
  out.push(ax.frame({ xlabel, ylabel, xticks: niceTicks(h.xlim[0], h.xlim[1], 5), yticks: niceTicks(h.ylim[0], h.ylim[1], 5) }));
  return out.join('\n');
}

/**
 * The SVG of labels.jpg, ultralytics `plot_labels`' four panels: instances per class (bars in the class
 * colours, class names under them below 30 classes), the first 1000 boxes drawn at the centre to show
 * their shapes, and 2-D histograms of box centres (x, y) and sizes (width, height), all normalised.
 * @param labels rows of [cls, cx, cy, w, h] per image (a {@link DatasetItem}'s labels).
 */
export function labelsSvg(labels: readonly Float32Array[], names: readonly string[], size: FigureSize = LABELS_FIGURE): string {
  const { cls, cx, cy, w: bw, h: bh } = labelColumns(labels);
  const nc = Math.max(names.length, cls.reduce((m, c) => Math.max(m, c + 1), 1));
  const W = size.widthIn * 72;
  const cell = W / 2;
  const body: string[] = [];

  // Instances per class.
  const counts = new Array<number>(nc).fill(0);
  for (const c of cls) counts[c]! += 1;
  const named = names.length > 0 && names.length < 30;
  const nameRoom = named ? Math.min(cell * 0.4, 8 + Math.max(...names.map((n) => textWidth(n, 10)))) : 30;
  const ymax = counts.reduce((m, c) => Math.max(m, c), 1) * 1.05;
  const bars = new Axes({ x: 58, y: 12, w: cell - 58 - 14, h: cell - 12 - nameRoom - 16 }, [-0.5, nc - 0.5], [0, ymax]);
  counts.forEach((c, i) => {
    const x = bars.px(i - 0.4);
    body.push(`<rect x="${r2(x)}" y="${r2(bars.py(c))}" width="${r2(bars.px(i + 0.4) - x)}" height="${r2(bars.py(0) - bars.py(c))}" fill="${classColor(i)}"/>`);
  });
  const classTicks = named ? names.map((_, i) => i) : niceTicks(0, nc - 1, Math.min(nc, 8)).filter((t) => Number.isInteger(t));
  body.push(bars.frame({
    ylabel: 'instances', yticks: niceTicks(0, ymax, 5).filter((t) => t <= ymax), xticks: classTicks,
    ...(named ? { xtickLabels: names, rotateX: true } : { xlabel: 'classes' }),
  }));

  // Box shapes, centred; ultralytics draws them on a 2000-pixel square.
  const side = cell - 30;
  const ox = cell + 15;
  const oy = 15;
  for (let k = 0; k < Math.min(MAX_RECTS, cls.length); k++) {
    const w = bw[k]! * side;
    const h = bh[k]! * side;
    body.push(`<rect x="${r2(ox + side / 2 - w / 2)}" y="${r2(oy + side / 2 - h / 2)}" width="${r2(w)}" height="${r2(h)}" fill="none" stroke="${classColor(cls[k]!)}" stroke-width="0.4"/>`);
  }

  const panel = (x0: number) => new Axes({ x: x0 + 58, y: cell + 12, w: cell - 58 - 14, h: cell - 12 - 44 }, [0, 1], [0, 1]);
  const xy = histogram2d(cx, cy);
  const wh = histogram2d(bw, bh);
  const pxy = panel(0);
  const pwh = panel(cell);
  body.push(histPanel(xy, new Axes(pxy.rect, xy.xlim, xy.ylim), 'x', 'y'));
  body.push(histPanel(wh, new Axes(pwh.rect, wh.xlim, wh.ylim), 'width', 'height'));
  return figureSvg(size, body);
}

/**
 * Writes labels.jpg (see {@link labelsSvg}) for a split's labels.
 * @example await plotLabels(dataset.train.map((it) => it.labels), names, 'runs/train/exp/labels.jpg')
 */
export async function plotLabels(labels: readonly Float32Array[], names: readonly string[], file: string): Promise<void> {
  await writeSvg(labelsSvg(labels, names), file);
}
