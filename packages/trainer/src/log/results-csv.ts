import { existsSync, readFileSync, statSync, appendFileSync, writeFileSync } from 'node:fs';
import { KdEdgeError } from '@kd-edge/core';

/** Columns of YOLOv5's `results.csv`, in its order. */
export const RESULTS_COLUMNS = [
  'epoch',
  'train/box_loss',
  'train/obj_loss',
  'train/cls_loss',
  'metrics/precision',
  'metrics/recall',
  'metrics/mAP_0.5',
  'metrics/mAP_0.5:0.95',
  'val/box_loss',
  'val/obj_loss',
  'val/cls_loss',
  'x/lr0',
  'x/lr1',
  'x/lr2',
] as const;

/** One of {@link RESULTS_COLUMNS}. */
export type ResultsColumn = (typeof RESULTS_COLUMNS)[number];

/** One epoch of results; a missing value is written as `nan` (for example when validation was skipped). */
export type ResultsRow<C extends string = ResultsColumn> = { epoch: number } & Partial<Record<C, number>>;

/** A parsed results CSV: trimmed column names and one record per row. */
export interface ResultsTable {
  columns: string[];
  rows: Record<string, number>[];
}

// YOLOv5 pads every cell to 20 characters: `%20s` for the header and `%20.5g` for values.
const WIDTH = 20;

/** Cell width of YOLOv5's classify results.csv (GenericLogger: `%23s`, `%23.5g`). */
export const GENERIC_RESULTS_WIDTH = 23;

/** Formats like C/Python `%.<precision>g`: shortest of fixed or exponent form, trailing zeros removed. */
export function formatG(v: number, precision = 5): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  const [mantissa, expText] = v.toExponential(precision - 1).split('e') as [string, string];
  const exp = Number(expText);
  const strip = (s: string) => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (exp < -4 || exp >= precision) {
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${strip(mantissa)}e${exp < 0 ? '-' : '+'}${e}`;
  }
  return strip(v.toFixed(precision - 1 - exp));
}

/** The header line YOLOv5 writes (without newline); detection's columns unless others are given. */
export function resultsHeader(columns: readonly string[] = RESULTS_COLUMNS, width = WIDTH): string {
  return columns.map((c) => c.padStart(width)).join(',');
}

/** Formats one row as YOLOv5 does (without newline). */
export function formatResultsRow(row: Readonly<Record<string, number | undefined>>, columns: readonly string[] = RESULTS_COLUMNS, width = WIDTH): string {
  return columns.map((c) => formatG(row[c] ?? NaN).padStart(width)).join(',');
}

/** Parses the text of a results CSV; `nan`/`inf` and unparsable cells become NaN/Infinity/NaN. */
export function parseResultsCsv(text: string): ResultsTable {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length === 0) return { columns: [], rows: [] };
  const columns = lines[0]!.split(',').map((c) => c.trim());
  const rows = lines.slice(1).map((line) => {
    const cells = line.split(',');
    const row: Record<string, number> = {};
    columns.forEach((c, i) => {
      const cell = (cells[i] ?? '').trim().toLowerCase();
      row[c] = cell === 'nan' || cell === '' ? NaN : cell === 'inf' ? Infinity : cell === '-inf' ? -Infinity : Number(cell);
    });
    return row;
  });
  return { columns, rows };
}

/** Reads a `results.csv` (ours or YOLOv5's) back, for `--resume` and for plotting. */
export function readResultsCsv(file: string): ResultsTable {
  return parseResultsCsv(readFileSync(file, 'utf8'));
}

/**
 * Appends one line per epoch to a YOLOv5-style `results.csv`, writing the header when the file is
 * new or empty. An existing file must have the same columns, so resumed runs keep one consistent table.
 * Detection's columns by default; classification passes its own (and GenericLogger's width 23).
 * @example new ResultsCsv('runs/train/exp/results.csv').append({ epoch: 0, 'metrics/mAP_0.5': 0.41 })
 */
export class ResultsCsv<C extends string = ResultsColumn> {
  readonly columns: readonly string[];

  constructor(readonly file: string, columns: readonly C[] = RESULTS_COLUMNS as readonly string[] as readonly C[], readonly width = WIDTH) {
    this.columns = columns[0] === 'epoch' ? columns : ['epoch', ...columns];
    if (existsSync(file) && statSync(file).size > 0) {
      const { columns: found } = readResultsCsv(file);
      if (found.join(',') !== this.columns.join(',')) {
        throw new KdEdgeError('RESULTS_CSV_MISMATCH', `${file} has columns [${found.join(', ')}], expected [${this.columns.join(', ')}]`);
      }
    }
  }

  /** Appends one epoch (writing the header first if needed); each call is one synchronous append. */
  append(row: ResultsRow<C>): void {
    if (!Number.isFinite(row.epoch)) throw new RangeError(`row.epoch must be a finite number, got ${row.epoch}`);
    const fresh = !existsSync(this.file) || statSync(this.file).size === 0;
    const cells = row as Readonly<Record<string, number | undefined>>;
    appendFileSync(this.file, `${fresh ? `${resultsHeader(this.columns, this.width)}\n` : ''}${formatResultsRow(cells, this.columns, this.width)}\n`);
  }

  /** Drops rows with `epoch >= fromEpoch`, so a resumed run does not duplicate epochs written after its last checkpoint. */
  truncateFrom(fromEpoch: number): void {
    if (!existsSync(this.file)) return;
    const lines = readFileSync(this.file, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
    if (lines.length === 0) return;
    const kept = lines.slice(1).filter((l) => Number(l.split(',')[0]) < fromEpoch);
    writeFileSync(this.file, [lines[0]!, ...kept].map((l) => `${l}\n`).join(''));
  }
}
