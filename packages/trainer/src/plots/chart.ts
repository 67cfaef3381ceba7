import sharp from 'sharp';
import { SVG_FONT, escapeXml, r2 } from '../log/svg.js';

/**
 * A figure sized like matplotlib's: drawn in points (1/72 in) on a `widthIn`×`heightIn` inch canvas,
 * rendered at `dpi`, so font sizes and line widths read as matplotlib's defaults (10 pt text).
 */
export interface FigureSize {
  widthIn: number;
  heightIn: number;
  dpi: number;
}

/** Pixel size of a figure. */
export function figurePixels(f: FigureSize): { width: number; height: number } {
  return { width: Math.round(f.widthIn * f.dpi), height: Math.round(f.heightIn * f.dpi) };
}

/** Wraps SVG elements drawn in points into a document of the figure's pixel size, on white. */
export function figureSvg(f: FigureSize, body: readonly string[]): string {
  const { width, height } = figurePixels(f);
  const w = f.widthIn * 72;
  const h = f.heightIn * 72;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${r2(w)} ${r2(h)}" font-family="${SVG_FONT}" font-size="10">`,
    `<rect width="${r2(w)}" height="${r2(h)}" fill="#fff"/>`,
    ...body,
    '</svg>',
  ].join('\n');
}

/** Renders an SVG document to a PNG or JPEG file (RGB, no alpha). */
export async function writeSvg(svg: string, file: string): Promise<void> {
  const img = sharp(Buffer.from(svg)).flatten({ background: '#ffffff' });
  await (/\.jpe?g$/i.test(file) ? img.jpeg({ quality: 95 }) : img.png()).toFile(file);
}

// DejaVu Sans averages about 0.6 em per character; close enough to reserve room for labels.
/** Estimated width of `text` at `size` points. */
export function textWidth(text: string, size: number): number {
  return text.length * size * 0.6;
}

/** matplotlib's default colour cycle (tab10). */
export const TAB10 = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** A colour ramp through evenly spaced stops, `t` in [0, 1]. */
export function ramp(stops: readonly string[], t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = hexRgb(stops[i]!);
  const b = hexRgb(stops[i + 1]!);
  return [0, 1, 2].map((k) => Math.round(a[k]! + (b[k]! - a[k]!) * f)) as [number, number, number];
}

/** `#rrggbb` of an RGB triple. */
export function rgbHex([r, g, b]: readonly number[]): string {
  return `#${[r, g, b].map((v) => Math.round(v!).toString(16).padStart(2, '0')).join('')}`;
}

function hexRgb(hex: string): [number, number, number] {
  const n = Number.parseInt(hex.slice(1), 16);
  return [n >> 16, (n >> 8) & 0xff, n & 0xff];
}

/** matplotlib's 'Blues' colormap stops (ColorBrewer). */
export const BLUES = ['#f7fbff', '#deebf7', '#c6dbef', '#9ecae1', '#6baed6', '#4292c6', '#2171b5', '#08519c', '#08306b'];

/** About `target` round-numbered ticks (1, 2, 2.5, 5 × 10^k steps) within [lo, hi]. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) ticks.push(Math.abs(k * step) < step * 1e-9 ? 0 : k * step);
  return ticks;
}

/** A tick label with the decimals its neighbours need (0.2 steps: one decimal). */
export function tickText(v: number, ticks: readonly number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : 1;
  let d = 0;
  while (d < 6 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6) d++;
  return v.toFixed(d);
}

/** A rectangle in points: left, top, width, height. */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Options of {@link Axes.frame}. */
export interface FrameOptions {
  title?: string;
  xlabel?: string;
  ylabel?: string;
  xticks?: readonly number[];
  yticks?: readonly number[];
  /** Tick labels for integer positions (class names) instead of numbers. */
  xtickLabels?: readonly string[];
  /** Rotate x tick labels by 90° (long class names). */
  rotateX?: boolean;
  /** Draw the four spines (default true). */
  spines?: boolean;
}

/** One entry of a legend: a line sample and its text. */
export interface LegendEntry {
  label: string;
  color: string;
  width: number;
}

/** A matplotlib-style axes: a data rectangle mapping [xlim] × [ylim] into `rect` (points), y up. */
export class Axes {
  constructor(readonly rect: Rect, readonly xlim: readonly [number, number], readonly ylim: readonly [number, number]) {}

  px(x: number): number {
    return this.rect.x + ((x - this.xlim[0]) / (this.xlim[1] - this.xlim[0])) * this.rect.w;
  }

  py(y: number): number {
    return this.rect.y + this.rect.h - ((y - this.ylim[0]) / (this.ylim[1] - this.ylim[0])) * this.rect.h;
  }

  /** Spines, ticks with their labels, axis labels and title (10 pt, 12 pt title, as matplotlib). */
  frame(o: FrameOptions): string {
    const { x, y, w, h } = this.rect;
    const out: string[] = [];
    const bottom = y + h;
    let below = 0;
    if (o.xticks) {
      const labels = o.xticks.map((t, i) => o.xtickLabels?.[i] ?? tickText(t, o.xticks!));
      o.xticks.forEach((t, i) => {
        const tx = this.px(t);
        out.push(`<line x1="${r2(tx)}" y1="${r2(bottom)}" x2="${r2(tx)}" y2="${r2(bottom + 3.5)}" stroke="#000" stroke-width="0.8"/>`);
        out.push(o.rotateX
          ? `<text transform="translate(${r2(tx + 3.5)},${r2(bottom + 6)}) rotate(-90)" text-anchor="end">${escapeXml(labels[i]!)}</text>`
          : `<text x="${r2(tx)}" y="${r2(bottom + 15)}" text-anchor="middle">${escapeXml(labels[i]!)}</text>`);
      });
      below = o.rotateX ? 8 + Math.max(0, ...labels.map((l) => textWidth(l, 10))) : 17;
    }
    if (o.yticks) {
      for (const t of o.yticks) {
        const ty = this.py(t);
        out.push(`<line x1="${r2(x - 3.5)}" y1="${r2(ty)}" x2="${r2(x)}" y2="${r2(ty)}" stroke="#000" stroke-width="0.8"/>`);
        out.push(`<text x="${r2(x - 6)}" y="${r2(ty + 3.5)}" text-anchor="end">${tickText(t, o.yticks)}</text>`);
      }
    }
    if (o.spines !== false) out.push(`<rect x="${r2(x)}" y="${r2(y)}" width="${r2(w)}" height="${r2(h)}" fill="none" stroke="#000" stroke-width="0.8"/>`);
    if (o.xlabel) out.push(`<text x="${r2(x + w / 2)}" y="${r2(bottom + below + 14)}" text-anchor="middle">${escapeXml(o.xlabel)}</text>`);
    if (o.ylabel) {
      const widest = Math.max(0, ...(o.yticks ?? []).map((t) => textWidth(tickText(t, o.yticks!), 10)));
      const lx = x - 10 - widest - 6;
      out.push(`<text transform="translate(${r2(lx)},${r2(y + h / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(o.ylabel)}</text>`);
    }
    if (o.title) out.push(`<text x="${r2(x + w / 2)}" y="${r2(y - 7)}" font-size="12" text-anchor="middle">${escapeXml(o.title)}</text>`);
    return out.join('\n');
  }

  /** A polyline through the points, clipped to the axes. */
  line(xs: ArrayLike<number>, ys: ArrayLike<number>, color: string, width: number): string {
    let d = '';
    for (let i = 0; i < xs.length; i++) d += `${i ? 'L' : 'M'}${r2(this.px(xs[i]!))},${r2(this.py(ys[i]!))}`;
    return `<path d="${d}" fill="none" stroke="${color}" stroke-width="${width}" stroke-linejoin="round" stroke-linecap="round"/>`;
  }

  /** A legend box with its top-left corner at (x, y) in points (matplotlib's frame, 10 pt text). */
  static legend(entries: readonly LegendEntry[], x: number, y: number): string {
    if (entries.length === 0) return '';
    const w = legendWidth(entries);
    const row = 13;
    const out = [`<rect x="${r2(x)}" y="${r2(y)}" width="${r2(w)}" height="${r2(entries.length * row + 8)}" rx="2" fill="#fff" fill-opacity="0.8" stroke="#ccc" stroke-width="0.8"/>`];
    entries.forEach((e, i) => {
      const cy = y + 4 + row * i + row / 2;
      out.push(`<line x1="${r2(x + 5)}" y1="${r2(cy)}" x2="${r2(x + 25)}" y2="${r2(cy)}" stroke="${e.color}" stroke-width="${e.width}"/>`);
      out.push(`<text x="${r2(x + 31)}" y="${r2(cy + 3.5)}">${escapeXml(e.label)}</text>`);
    });
    return out.join('\n');
  }
}

/** Width in points of the legend {@link Axes.legend} draws. */
export function legendWidth(entries: readonly LegendEntry[]): number {
  return entries.length ? 36 + Math.max(...entries.map((e) => textWidth(e.label, 10))) : 0;
}
