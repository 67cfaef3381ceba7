import sharp from 'sharp';
import { readResultsCsv, type ResultsTable } from './results-csv.js';
import { SVG_FONT, escapeXml, r2 } from './svg.js';

/** Options of {@link plotResults}. */
export interface PlotResultsOptions {
  /** Image width in pixels (default 2400, like YOLOv5's 12 in × 200 dpi figure). */
  width?: number;
  /** Image height in pixels (default 1200). */
  height?: number;
}

// Panel rows of the tables kd-trainer writes, the first whose columns a table has wins.
const PANEL_LAYOUTS: readonly (readonly string[])[][] = [
  // YOLOv5's plot_results: train losses, P, R; val losses, mAP50, mAP50-95.
  [
    ['train/box_loss', 'train/obj_loss', 'train/cls_loss', 'metrics/precision', 'metrics/recall'],
    ['val/box_loss', 'val/obj_loss', 'val/cls_loss', 'metrics/mAP_0.5', 'metrics/mAP_0.5:0.95'],
  ],
  // Classification (ultralytics' classify columns): the losses (with distillation's terms), then accuracy and learning rate.
  [
    ['train/loss', 'train/ce_loss', 'train/kd_loss', 'val/loss', 'test/loss'],
    ['metrics/accuracy_top1', 'metrics/accuracy_top5', 'lr/0'],
  ],
];

/** The panels of a table in rows: a known layout's columns that it has, otherwise every column but `epoch`, in one or two rows. */
export function resultsPanels(columns: readonly string[]): string[][] {
  for (const layout of PANEL_LAYOUTS) {
    const grid = layout.map((row) => row.filter((c) => columns.includes(c))).filter((row) => row.length > 0);
    if (grid.length > 0) return grid;
  }
  const rest = columns.filter((c) => c !== 'epoch');
  const cols = Math.max(1, Math.ceil(rest.length / (rest.length > 4 ? 2 : 1)));
  const grid: string[][] = [];
  for (let i = 0; i < rest.length; i += cols) grid.push(rest.slice(i, i + cols));
  return grid;
}

const BLUE = '#1f77b4';
const ORANGE = '#ff7f0e';

/** About `target` round-numbered ticks (1, 2, 5 × 10^k steps) covering [lo, hi]. */
function niceTicks(lo: number, hi: number, target: number, integer = false): { ticks: number[]; step: number } {
  const raw = (hi - lo) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return { ticks, step };
}

/** A tick's label; exponent form for a whole axis or none of it (a learning-rate axis never mixes 0.0010 with 8.0e-4). */
function tickLabel(v: number, step: number, ticks: readonly number[]): string {
  const a = Math.max(...ticks.map(Math.abs));
  if (v !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  // Enough decimals to tell neighbouring ticks apart (a 0.0025 step needs 4).
  let decimals = 0;
  while (decimals < 6 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-6) decimals++;
  return v.toFixed(decimals);
}

/** Gaussian smoothing with reflected edges (the same shape as scipy's gaussian_filter1d, sigma 3). */
function gaussianSmooth(y: number[], sigma = 3): number[] {
  const radius = Math.floor(4 * sigma + 0.5);
  const w = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-0.5 * ((i - radius) / sigma) ** 2));
  const total = w.reduce((a, b) => a + b, 0);
  const n = y.length;
  const reflect = (i: number) => {
    const m = ((i % (2 * n)) + 2 * n) % (2 * n);
    return m < n ? m : 2 * n - 1 - m;
  };
  return y.map((_, i) => w.reduce((acc, wk, k) => acc + wk * y[reflect(i + k - radius)]!, 0) / total);
}

function domain(values: number[], integer: boolean): [number, number] {
  if (values.length === 0) return [0, 1];
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    const pad = integer ? 0.5 : Math.abs(lo) * 0.1 || 0.1;
    return [lo - pad, hi + pad];
  }
  if (!integer) {
    const pad = (hi - lo) * 0.05;
    lo -= pad;
    hi += pad;
  }
  return [lo, hi];
}

function panelSvg(
  title: string, xs: number[], ys: number[], x0: number, y0: number, w: number, h: number, s: number, legend: boolean,
): string {
  const left = x0 + 58 * s;
  const right = x0 + w - 12 * s;
  const top = y0 + 30 * s;
  const bottom = y0 + h - 28 * s;
  const finite = xs.map((x, i) => [x, ys[i]!] as const).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const [xlo, xhi] = domain(xs.filter(Number.isFinite), true);
  const [ylo, yhi] = domain(finite.map(([, y]) => y), false);
  const px = (x: number) => left + ((x - xlo) / (xhi - xlo)) * (right - left);
  const py = (y: number) => bottom - ((y - ylo) / (yhi - ylo)) * (bottom - top);
  const font = 11 * s;
  const out: string[] = [];
  out.push(`<text x="${r2((left + right) / 2)}" y="${r2(y0 + 20 * s)}" font-size="${r2(13 * s)}" text-anchor="middle">${escapeXml(title)}</text>`);

  const xt = niceTicks(xlo, xhi, Math.min(6, Math.max(1, Math.round(xhi - xlo))), true);
  for (const t of xt.ticks) {
    const x = r2(px(t));
    out.push(`<line x1="${x}" y1="${r2(top)}" x2="${x}" y2="${r2(bottom)}" stroke="#e6e6e6" stroke-width="${r2(s)}"/>`);
    out.push(`<line x1="${x}" y1="${r2(bottom)}" x2="${x}" y2="${r2(bottom + 4 * s)}" stroke="#000" stroke-width="${r2(s)}"/>`);
    out.push(`<text x="${x}" y="${r2(bottom + 16 * s)}" font-size="${r2(font)}" text-anchor="middle">${tickLabel(t, xt.step, xt.ticks)}</text>`);
  }
  const yt = niceTicks(ylo, yhi, 5);
  for (const t of yt.ticks) {
    const y = r2(py(t));
    out.push(`<line x1="${r2(left)}" y1="${y}" x2="${r2(right)}" y2="${y}" stroke="#e6e6e6" stroke-width="${r2(s)}"/>`);
    out.push(`<line x1="${r2(left - 4 * s)}" y1="${y}" x2="${r2(left)}" y2="${y}" stroke="#000" stroke-width="${r2(s)}"/>`);
    out.push(`<text x="${r2(left - 6 * s)}" y="${r2(py(t) + 4 * s)}" font-size="${r2(font)}" text-anchor="end">${tickLabel(t, yt.step, yt.ticks)}</text>`);
  }
  out.push(`<rect x="${r2(left)}" y="${r2(top)}" width="${r2(right - left)}" height="${r2(bottom - top)}" fill="none" stroke="#000" stroke-width="${r2(s)}"/>`);

  if (finite.length === 0) {
    out.push(`<text x="${r2((left + right) / 2)}" y="${r2((top + bottom) / 2)}" font-size="${r2(font)}" text-anchor="middle" fill="#888">no data</text>`);
    return out.join('\n');
  }
  // A NaN (e.g. an epoch without validation) breaks the line instead of bridging the gap.
  let d = '';
  let pen = false;
  xs.forEach((x, i) => {
    const y = ys[i]!;
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      pen = false;
      return;
    }
    d += `${pen ? 'L' : 'M'}${r2(px(x))},${r2(py(y))}`;
    pen = true;
  });
  out.push(`<path d="${d}" fill="none" stroke="${BLUE}" stroke-width="${r2(2 * s)}" stroke-linejoin="round"/>`);
  if (finite.length <= 300) {
    for (const [x, y] of finite) out.push(`<circle cx="${r2(px(x))}" cy="${r2(py(y))}" r="${r2(2.5 * s)}" fill="${BLUE}"/>`);
  }
  if (finite.length >= 3) {
    const smooth = gaussianSmooth(finite.map(([, y]) => y));
    const sd = finite.map(([x], i) => `${i ? 'L' : 'M'}${r2(px(x))},${r2(py(smooth[i]!))}`).join('');
    out.push(`<path d="${sd}" fill="none" stroke="${ORANGE}" stroke-width="${r2(2 * s)}" stroke-dasharray="${r2(2 * s)},${r2(3 * s)}"/>`);
  }
  if (legend) {
    const lx = right - 78 * s;
    const ly = top + 8 * s;
    const entries = [['results', BLUE, ''], ['smooth', ORANGE, ` stroke-dasharray="${r2(2 * s)},${r2(3 * s)}"`]] as const;
    const shown = finite.length >= 3 ? entries : entries.slice(0, 1);
    out.push(`<rect x="${r2(lx)}" y="${r2(ly)}" width="${r2(72 * s)}" height="${r2((8 + 14 * shown.length) * s)}" fill="#fff" fill-opacity="0.8" stroke="#ccc" stroke-width="${r2(s)}"/>`);
    for (const [i, [label, color, dash]] of shown.entries()) {
      const yy = ly + (12 + 14 * i) * s;
      out.push(`<line x1="${r2(lx + 5 * s)}" y1="${r2(yy)}" x2="${r2(lx + 25 * s)}" y2="${r2(yy)}" stroke="${color}" stroke-width="${r2(2 * s)}"${dash}/>`);
      out.push(`<text x="${r2(lx + 30 * s)}" y="${r2(yy + 4 * s)}" font-size="${r2(10 * s)}">${label}</text>`);
    }
  }
  return out.join('\n');
}

/**
 * Builds the SVG of a training-curve grid, one small line chart per metric (YOLOv5's panels for a
 * detection table, losses over accuracy for a classification one, otherwise every column but `epoch`).
 */
export function renderResultsSvg(table: ResultsTable, width = 2400, height = 1200): string {
  const grid = resultsPanels(table.columns);
  const xs = table.columns.includes('epoch') ? table.rows.map((r) => r.epoch!) : table.rows.map((_, i) => i);
  const rows = Math.max(1, grid.length);
  const cols = Math.max(1, ...grid.map((row) => row.length));
  const s = Math.min(width / 1200, height / 600);
  const pad = 6 * s;
  const cw = (width - 2 * pad) / cols;
  const ch = (height - 2 * pad) / rows;
  const panels = grid.flatMap((row, r) => row.map((c, i) =>
    panelSvg(c, xs, table.rows.map((v) => v[c] ?? NaN), pad + i * cw, pad + r * ch, cw, ch, s, r === 0 && i === 0),
  ));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${SVG_FONT}">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...panels,
    '</svg>',
  ].join('\n');
}

/**
 * Renders `results.png` (training curves, like YOLOv5's) from a results CSV. Works with a single epoch
 * and with NaN cells (a NaN breaks the line).
 * @example await plotResults('runs/train/exp/results.csv', 'runs/train/exp/results.png')
 */
export async function plotResults(csvFile: string, outPng: string, options: PlotResultsOptions = {}): Promise<void> {
  const width = options.width ?? 2400;
  const height = options.height ?? 1200;
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 100) throw new RangeError(`options.${name} must be an integer >= 100, got ${v}`);
  }
  const svg = renderResultsSvg(readResultsCsv(csvFile), width, height);
  await sharp(Buffer.from(svg)).flatten({ background: '#ffffff' }).png().toFile(outPng);
}
