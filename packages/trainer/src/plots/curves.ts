import { join } from 'node:path';
import { COCO_RECALL_THRESHOLDS, type CocoEval, type ConfidenceCurves } from '@kd-edge/core';
import { Axes, TAB10, figureSvg, legendWidth, niceTicks, writeSvg, type FigureSize, type LegendEntry } from './chart.js';

/** One line of a curve plot. */
export interface CurveLine {
  label: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
}

/** What a curve plot draws: one thin line per class, a thick "all classes" line, the legend's text. */
export interface CurvePlot {
  title: string;
  xlabel: string;
  ylabel: string;
  classes: CurveLine[];
  all: CurveLine;
  /** For a metric–confidence curve: the best value of the "all classes" line and its confidence. */
  best?: { value: number; confidence: number; index: number };
}

/** The metrics plotted against confidence, by file stem (ultralytics' names). */
export const CONFIDENCE_CURVES = { F1: 'F1', P: 'Precision', R: 'Recall' } as const;
/** `F1`, `P` or `R`. */
export type ConfidenceCurveName = keyof typeof CONFIDENCE_CURVES;

// Above this many classes the lines are grey and the legend names only "all classes" (ultralytics: < 21).
const MAX_LEGEND_CLASSES = 20;

/** The curve figures' size: 9 × 6 in at 250 dpi, 2250 × 1500 px, as ultralytics'. */
export const CURVE_FIGURE: FigureSize = { widthIn: 9, heightIn: 6, dpi: 250 };

/**
 * ultralytics `smooth(y, f)`: a box filter of about `2·f·len` taps (odd) over `y` padded with its end
 * values. Summed in the order `precisionRecall` sums, so the maximum lands where it does there.
 */
export function boxSmooth(y: ArrayLike<number>, f: number): Float64Array {
  const n = y.length;
  const taps = Math.floor(Math.round(n * f * 2) / 2) + 1;
  const half = taps >> 1;
  const padded = new Float64Array(n + 2 * half);
  padded.fill(y[0]!, 0, half);
  for (let i = 0; i < n; i++) padded[half + i] = y[i]!;
  padded.fill(y[n - 1]!, half + n);
  const w = 1 / taps;
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let m = 0; m < taps; m++) s += padded[j + m]! * w;
    out[j] = s;
  }
  return out;
}

/** Mean over the classes that have a curve, point by point (in class order, as the metrics sum). */
function meanCurve(curves: readonly (ArrayLike<number> | null)[], length: number): Float64Array {
  const present = curves.filter((c): c is ArrayLike<number> => c !== null);
  const out = new Float64Array(length);
  for (let j = 0; j < length; j++) {
    let s = 0;
    for (const c of present) s += c[j]!;
    out[j] = present.length ? s / present.length : 0;
  }
  return out;
}

const nameOf = (names: readonly string[], c: number): string => names[c] ?? String(c);

/**
 * PR_curve.png's content: each class's interpolated precision at IoU 0.5 over COCO's 101 recall
 * thresholds (the curve whose mean is its AP50), labelled with that AP50, and their mean labelled
 * with mAP@0.5: the same figures {@link validate} reports.
 */
export function prCurvePlot(coco: CocoEval, names: readonly string[]): CurvePlot {
  if (!coco.prCurves) throw new RangeError('coco.prCurves is missing: evaluate with { prCurves: true }');
  const classes: CurveLine[] = [];
  coco.prCurves.forEach((y, c) => {
    if (y) classes.push({ label: `${nameOf(names, c)} ${coco.perClass[c]!.ap50.toFixed(3)}`, x: COCO_RECALL_THRESHOLDS, y });
  });
  const all = meanCurve(coco.prCurves, COCO_RECALL_THRESHOLDS.length);
  return {
    title: 'Precision-Recall Curve', xlabel: 'Recall', ylabel: 'Precision', classes,
    all: { label: `all classes ${Math.max(0, coco.map50).toFixed(3)} mAP@0.5`, x: COCO_RECALL_THRESHOLDS, y: all },
  };
}

/**
 * F1_curve.png, P_curve.png or R_curve.png's content: each class's metric over confidence and the
 * class mean, smoothed and labelled with its best value and where. Smoothing is the metrics' own
 * (fraction 0.1, ultralytics plots 0.05), so the F1 peak is the confidence at which {@link validate}
 * reads P and R, and the unsmoothed mean there is the reported figure.
 */
export function confidenceCurvePlot(curves: ConfidenceCurves, metric: ConfidenceCurveName, names: readonly string[]): CurvePlot {
  const per = metric === 'F1' ? curves.f1 : metric === 'P' ? curves.precision : curves.recall;
  const x = curves.confidence;
  const classes: CurveLine[] = [];
  per.forEach((y, c) => {
    if (y) classes.push({ label: nameOf(names, c), x, y });
  });
  const smooth = boxSmooth(meanCurve(per, x.length), 0.1);
  let index = 0;
  for (let j = 1; j < smooth.length; j++) if (smooth[j]! > smooth[index]!) index = j;
  // F1's peak is the metrics' own choice; P's and R's are their curves' maxima, as ultralytics labels them.
  if (metric === 'F1') index = curves.best;
  const value = smooth[index]!;
  const ylabel = CONFIDENCE_CURVES[metric];
  return {
    title: `${ylabel}-Confidence Curve`, xlabel: 'Confidence', ylabel, classes,
    all: { label: `all classes ${value.toFixed(2)} at ${x[index]!.toFixed(3)}`, x, y: smooth },
    best: { value, confidence: x[index]!, index },
  };
}

/** The SVG of a curve plot: axes [0, 1]², class lines (1 pt), the mean (3 pt, blue), a legend to the right. */
export function curvePlotSvg(plot: CurvePlot, size: FigureSize = CURVE_FIGURE): string {
  const legendClasses = plot.classes.length <= MAX_LEGEND_CLASSES;
  const entries: LegendEntry[] = [
    ...(legendClasses ? plot.classes.map((l, i) => ({ label: l.label, color: TAB10[i % TAB10.length]!, width: 1 })) : []),
    { label: plot.all.label, color: 'blue', width: 3 },
  ];
  const W = size.widthIn * 72;
  const H = size.heightIn * 72;
  const lw = legendWidth(entries);
  const ax = new Axes({ x: 52, y: 26, w: W - 52 - 14 - lw - 10, h: H - 26 - 40 }, [0, 1], [0, 1]);
  const ticks = niceTicks(0, 1, 5);
  const body = [ax.frame({ title: plot.title, xlabel: plot.xlabel, ylabel: plot.ylabel, xticks: ticks, yticks: ticks })];
  body.push(`<clipPath id="plot-area"><rect x="${ax.rect.x}" y="${ax.rect.y - 2}" width="${ax.rect.w + 2}" height="${ax.rect.h + 2}"/></clipPath>`);
  body.push('<g clip-path="url(#plot-area)">');
  plot.classes.forEach((l, i) => body.push(ax.line(l.x, l.y, legendClasses ? TAB10[i % TAB10.length]! : 'grey', 1)));
  body.push(ax.line(plot.all.x, plot.all.y, 'blue', 3));
  body.push('</g>');
  body.push(Axes.legend(entries, ax.rect.x + ax.rect.w + 10, ax.rect.y));
  return figureSvg(size, body);
}

/**
 * Writes `PR_curve.png`, `F1_curve.png`, `P_curve.png` and `R_curve.png` into `dir`, as ultralytics'
 * `ap_per_class(plot=True)`; returns the files written.
 */
export async function writeCurvePlots(dir: string, coco: CocoEval, curves: ConfidenceCurves, names: readonly string[]): Promise<string[]> {
  const jobs: [string, CurvePlot][] = [
    ['PR_curve.png', prCurvePlot(coco, names)],
    ...(Object.keys(CONFIDENCE_CURVES) as ConfidenceCurveName[]).map((m): [string, CurvePlot] => [`${m}_curve.png`, confidenceCurvePlot(curves, m, names)]),
  ];
  await Promise.all(jobs.map(([f, p]) => writeSvg(curvePlotSvg(p), join(dir, f))));
  return jobs.map(([f]) => join(dir, f));
}
