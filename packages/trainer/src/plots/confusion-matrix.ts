import { boxIou, type Annotation, type Detection } from '@kd-edge/core';
import { escapeXml, r2 } from '../log/svg.js';
import { Axes, BLUES, figureSvg, niceTicks, ramp, rgbHex, textWidth, tickText, writeSvg, type FigureSize } from './chart.js';

/** Options of a {@link ConfusionMatrix}: ultralytics' defaults. */
export interface ConfusionMatrixOptions {
  /** Detections at or below this confidence are left out (default 0.25). */
  conf?: number;
  /** A detection and a label match above this IoU, whatever their classes (default 0.45). */
  iouThres?: number;
}

/**
 * Detection confusion matrix, as ultralytics `ConfusionMatrix` (utils/metrics.py): (nc+1)×(nc+1)
 * counts, rows the predicted class, columns the true class, index nc the background. Labels and
 * detections are paired one to one by IoU, class-agnostic; a pair counts at [predicted, true] (the
 * diagonal when the classes agree), an unpaired label at [background, true] (missed), an unpaired
 * detection at [predicted, background] (false positive). Unlike YOLOv5 v7.0, whose `if n:` skips them,
 * an image's unpaired detections count even when nothing in it paired or it has no labels, as
 * ultralytics 8 counts them.
 * @example
 * const cm = new ConfusionMatrix(3);
 * cm.processImage(detections, annotations);
 * cm.count(0, 0); // true positives of class 0
 */
export class ConfusionMatrix {
  /** Row-major counts, `matrix[pred * (nc + 1) + true]`. */
  readonly matrix: Float64Array;
  readonly conf: number;
  readonly iouThres: number;

  constructor(readonly nc: number, options: ConfusionMatrixOptions = {}) {
    if (!Number.isInteger(nc) || nc < 1) throw new RangeError(`nc must be a positive integer, got ${nc}`);
    this.conf = options.conf ?? 0.25;
    this.iouThres = options.iouThres ?? 0.45;
    for (const [name, v] of [['conf', this.conf], ['iouThres', this.iouThres]] as const) {
      if (!(v >= 0 && v <= 1)) throw new RangeError(`options.${name} must be within [0, 1], got ${v}`);
    }
    this.matrix = new Float64Array((nc + 1) * (nc + 1));
  }

  /** Adds one image's detections (after NMS) and ground truth, both xyxy in the same pixel space. */
  processImage(detections: readonly Detection[], labels: readonly Annotation[]): void {
    const nc = this.nc;
    const dets = detections.filter((d) => d.score > this.conf);
    const pairs: { l: number; d: number; iou: number }[] = [];
    for (let l = 0; l < labels.length; l++) {
      for (let d = 0; d < dets.length; d++) {
        const iou = boxIou(labels[l]!.box, dets[d]!.box);
        if (iou > this.iouThres) pairs.push({ l, d, iou });
      }
    }
    // Highest IoU first: each detection keeps its best label, then each label its best detection.
    pairs.sort((a, b) => b.iou - a.iou);
    const bestOfDet = new Map<number, { l: number; d: number; iou: number }>();
    for (const p of pairs) if (!bestOfDet.has(p.d)) bestOfDet.set(p.d, p);
    const detOfLabel = new Map<number, number>();
    for (const p of [...bestOfDet.values()].sort((a, b) => b.iou - a.iou)) if (!detOfLabel.has(p.l)) detOfLabel.set(p.l, p.d);
    const paired = new Set(detOfLabel.values());
    for (let l = 0; l < labels.length; l++) {
      const gc = this.checkClass(labels[l]!.cls, 'label');
      const d = detOfLabel.get(l);
      this.add(d === undefined ? nc : this.checkClass(dets[d]!.cls, 'detection'), gc);
    }
    for (let d = 0; d < dets.length; d++) if (!paired.has(d)) this.add(this.checkClass(dets[d]!.cls, 'detection'), nc);
  }

  /** The count at [predicted, true]; index nc is the background. */
  count(pred: number, truth: number): number {
    return this.matrix[pred * (this.nc + 1) + truth]!;
  }

  /** The counts as rows (predicted) of columns (true). */
  rows(): number[][] {
    const n = this.nc + 1;
    return Array.from({ length: n }, (_, i) => Array.from(this.matrix.subarray(i * n, (i + 1) * n)));
  }

  /** True positives (the diagonal) and false positives (the rest of each row) per class, background left out. */
  tpFp(): { tp: number[]; fp: number[] } {
    const rows = this.rows();
    const tp = rows.slice(0, this.nc).map((row, i) => row[i]!);
    const fp = rows.slice(0, this.nc).map((row, i) => row.reduce((s, v) => s + v, 0) - row[i]!);
    return { tp, fp };
  }

  private add(pred: number, truth: number): void {
    this.matrix[pred * (this.nc + 1) + truth]! += 1;
  }

  private checkClass(cls: number, what: string): number {
    if (!Number.isInteger(cls) || cls < 0 || cls >= this.nc) throw new RangeError(`${what} class ${cls} is outside 0..${this.nc - 1}`);
    return cls;
  }
}

/** The confusion-matrix figure's size: 12 × 9 in at 250 dpi, 3000 × 2250 px, as ultralytics'. */
export const CONFUSION_FIGURE: FigureSize = { widthIn: 12, heightIn: 9, dpi: 250 };

/** Each column divided by its sum (ultralytics' `normalize=True`): the share of a true class's boxes per prediction. */
export function normalizeColumns(cm: ConfusionMatrix): number[][] {
  const rows = cm.rows();
  const sums = rows[0]!.map((_, c) => rows.reduce((s, row) => s + row[c]!, 0));
  return rows.map((row) => row.map((v, c) => v / (sums[c]! + 1e-9)));
}

// seaborn's rule for annotation colour: dark text on light cells (relative luminance above 0.408).
function luminance([r, g, b]: readonly number[]): number {
  const lin = (v: number) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r!) + 0.7152 * lin(g!) + 0.0722 * lin(b!);
}

/**
 * The SVG of confusion_matrix.png: column-normalised shares as a 'Blues' heatmap (cells under 0.005
 * blank), values annotated below 30 classes, class names and 'background' on both axes, a colour bar.
 */
export function confusionMatrixSvg(cm: ConfusionMatrix, names: readonly string[], size: FigureSize = CONFUSION_FIGURE): string {
  const n = cm.nc + 1;
  const values = normalizeColumns(cm).map((row) => row.map((v) => (v < 0.005 ? NaN : v)));
  const finite = values.flat().filter(Number.isFinite);
  const vmax = finite.length ? Math.max(...finite) : 1;
  const labels = names.length === cm.nc && cm.nc < 99 ? [...names, 'background'] : Array.from({ length: n }, (_, i) => (i === cm.nc ? 'background' : String(i)));
  const W = size.widthIn * 72;
  const H = size.heightIn * 72;
  const ylabW = Math.max(...labels.map((l) => textWidth(l, 10)));
  const leftRoom = 32 + ylabW;
  const top = 28;
  const cbW = 14;
  const rightRoom = 12 + cbW + 40;
  // Room below for the x labels: horizontal if they fit their cells, else rotated.
  const trySide = (below: number) => Math.min(W - leftRoom - rightRoom - 20, H - top - below);
  let side = trySide(50);
  const rotate = Math.max(...labels.map((l) => textWidth(l, 10))) > side / n - 4;
  if (rotate) side = trySide(34 + ylabW);
  // The square matrix and its colour bar, centred across the figure.
  const left = (W - leftRoom - side - rightRoom) / 2 + leftRoom;
  const cell = side / n;
  const font = Math.min(10, cell * 0.8);
  const ax = new Axes({ x: left, y: top, w: side, h: side }, [0, n], [n, 0]);
  const body: string[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = values[i]![j]!;
      if (!Number.isFinite(v)) continue;
      const rgb = ramp(BLUES, v / vmax);
      const x = ax.px(j);
      const y = ax.py(i);
      body.push(`<rect x="${r2(x)}" y="${r2(y)}" width="${r2(cell + 0.3)}" height="${r2(cell + 0.3)}" fill="${rgbHex(rgb)}"/>`);
      if (cm.nc < 30) {
        body.push(`<text x="${r2(x + cell / 2)}" y="${r2(y + cell / 2 + 2.8)}" font-size="8" text-anchor="middle" fill="${luminance(rgb) > 0.408 ? '#262626' : '#fff'}">${v.toFixed(2)}</text>`);
      }
    }
  }
  // Tick labels at cell centres, sized down to the cells when there are many classes.
  const bottom = top + side;
  labels.forEach((l, k) => {
    const c = ax.px(k + 0.5);
    body.push(rotate
      ? `<text transform="translate(${r2(c + font * 0.35)},${r2(bottom + 5)}) rotate(-90)" font-size="${r2(font)}" text-anchor="end">${escapeXml(l)}</text>`
      : `<text x="${r2(c)}" y="${r2(bottom + 5 + font)}" font-size="${r2(font)}" text-anchor="middle">${escapeXml(l)}</text>`);
    body.push(`<text x="${r2(left - 5)}" y="${r2(ax.py(k + 0.5) + font * 0.35)}" font-size="${r2(font)}" text-anchor="end">${escapeXml(l)}</text>`);
  });
  const xlabelY = bottom + 5 + (rotate ? Math.max(...labels.map((l) => textWidth(l, font))) + 4 : font + 4) + 12;
  body.push(`<text x="${r2(left + side / 2)}" y="${r2(xlabelY)}" text-anchor="middle">True</text>`);
  body.push(`<text transform="translate(${r2(left - 14 - ylabW)},${r2(top + side / 2)}) rotate(-90)" text-anchor="middle">Predicted</text>`);
  body.push(`<text x="${r2(left + side / 2)}" y="${r2(top - 9)}" font-size="12" text-anchor="middle">Confusion Matrix</text>`);
  // Colour bar: the ramp in 64 bands from 0 at the bottom to vmax at the top.
  const cbX = left + side + 12;
  const bands = 64;
  for (let b = 0; b < bands; b++) {
    const y = top + side - ((b + 1) / bands) * side;
    body.push(`<rect x="${r2(cbX)}" y="${r2(y)}" width="${cbW}" height="${r2(side / bands + 0.3)}" fill="${rgbHex(ramp(BLUES, (b + 0.5) / bands))}"/>`);
  }
  const cb = new Axes({ x: cbX, y: top, w: cbW, h: side }, [0, 1], [0, vmax]);
  const cbTicks = niceTicks(0, vmax, 5);
  for (const t of cbTicks) {
    const y = cb.py(t);
    body.push(`<line x1="${r2(cbX + cbW)}" y1="${r2(y)}" x2="${r2(cbX + cbW + 3.5)}" y2="${r2(y)}" stroke="#000" stroke-width="0.8"/>`);
    body.push(`<text x="${r2(cbX + cbW + 6)}" y="${r2(y + 3.5)}">${tickText(t, cbTicks)}</text>`);
  }
  return figureSvg(size, body);
}

/**
 * Writes confusion_matrix.png (see {@link confusionMatrixSvg}).
 * @example await plotConfusionMatrix(cm, names, 'runs/train/exp/confusion_matrix.png')
 */
export async function plotConfusionMatrix(cm: ConfusionMatrix, names: readonly string[], file: string): Promise<void> {
  await writeSvg(confusionMatrixSvg(cm, names), file);
}
