import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { RESULTS_COLUMNS, ResultsCsv, formatG, readResultsCsv, type ResultsRow } from '../src/log/results-csv.js';
import { plotResults, renderResultsSvg } from '../src/log/results-plot.js';

const dir = mkdtempSync(join(tmpdir(), 'kd-results-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fakeRow(epoch: number): ResultsRow {
  const d = Math.exp(-epoch / 5);
  return {
    epoch,
    'train/box_loss': 0.03 + 0.05 * d,
    'train/obj_loss': 0.02 + 0.02 * d,
    'train/cls_loss': 0.01 * d,
    'metrics/precision': 0.9 - 0.6 * d,
    'metrics/recall': 0.8 - 0.5 * d,
    'metrics/mAP_0.5': epoch === 3 ? NaN : 0.7 - 0.6 * d,
    'metrics/mAP_0.5:0.95': 0.45 - 0.4 * d,
    'val/box_loss': 0.04 + 0.04 * d,
    'val/obj_loss': 0.015 + 0.01 * d,
    'x/lr0': 0.01 * d,
    'x/lr1': 0.01 * d,
    'x/lr2': 0.1 - 0.09 * (1 - d),
  };
}

describe('formatG', () => {
  it('matches C/Python %.5g', () => {
    const cases: [number, string][] = [
      [0, '0'], [1, '1'], [0.05123456, '0.051235'], [123456, '1.2346e+05'], [99999.5, '1e+05'], [1e-5, '1e-05'],
      [0.0001, '0.0001'], [0.00012345678, '0.00012346'], [12.5, '12.5'], [-0.5, '-0.5'], [NaN, 'nan'], [Infinity, 'inf'],
    ];
    for (const [v, s] of cases) expect(formatG(v)).toBe(s);
  });
});

describe('ResultsCsv', () => {
  it('writes the YOLOv5 header and 20-wide rows, and reads them back', () => {
    const file = join(dir, 'results.csv');
    const csv = new ResultsCsv(file);
    for (let e = 0; e < 5; e++) csv.append(fakeRow(e));
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines).toHaveLength(7);
    expect(lines[0]).toBe(RESULTS_COLUMNS.map((c) => c.padStart(20)).join(','));
    expect(lines[0]!.startsWith('               epoch,      train/box_loss,')).toBe(true);
    expect(lines[1]!.split(',').every((cell) => cell.length === 20)).toBe(true);
    expect(lines[1]!.split(',')[0]).toBe('                   0');
    expect(lines[1]!.split(',')[10]!.trim()).toBe('nan'); // val/cls_loss was not given
    expect(lines[1]!.split(',')[1]!.trim()).toBe('0.08');

    const table = readResultsCsv(file);
    expect(table.columns).toEqual([...RESULTS_COLUMNS]);
    expect(table.rows).toHaveLength(5);
    table.rows.forEach((row, e) => {
      const want = fakeRow(e);
      for (const c of RESULTS_COLUMNS) {
        const v = want[c] ?? NaN;
        if (Number.isNaN(v)) expect(row[c]).toBeNaN();
        else expect(row[c]).toBeCloseTo(v, Math.max(0, 4 - Math.floor(Math.log10(Math.abs(v) || 1))));
      }
    });
  });

  it('appends to an existing file without a second header and can drop epochs for a resume', () => {
    const file = join(dir, 'resume.csv');
    new ResultsCsv(file).append(fakeRow(0));
    const again = new ResultsCsv(file);
    again.append(fakeRow(1));
    again.append(fakeRow(2));
    expect(readResultsCsv(file).rows.map((r) => r.epoch)).toEqual([0, 1, 2]);
    again.truncateFrom(1);
    expect(readResultsCsv(file).rows.map((r) => r.epoch)).toEqual([0]);
    again.append(fakeRow(1));
    expect(readResultsCsv(file).rows.map((r) => r.epoch)).toEqual([0, 1]);
  });

  it('refuses a file with other columns and a non-finite epoch', () => {
    const file = join(dir, 'other.csv');
    writeFileSync(file, 'a,b\n1,2\n');
    expect(() => new ResultsCsv(file)).toThrow(expect.objectContaining({ code: 'RESULTS_CSV_MISMATCH' }));
    expect(() => new ResultsCsv(join(dir, 'x.csv')).append({ epoch: NaN })).toThrow(RangeError);
  });
});

describe('plotResults', () => {
  async function plot(epochs: number, options?: { width: number; height: number }) {
    const csvFile = join(dir, `plot${epochs}.csv`);
    const csv = new ResultsCsv(csvFile);
    for (let e = 0; e < epochs; e++) csv.append(fakeRow(e));
    const png = join(dir, `plot${epochs}.png`);
    await plotResults(csvFile, png, options);
    return sharp(png).metadata();
  }

  it('renders a readable PNG of the default size for one epoch', async () => {
    const meta = await plot(1);
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 2400, 1200]);
  });

  it('renders 20 epochs with NaN cells at a requested size', async () => {
    const meta = await plot(20, { width: 1000, height: 500 });
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 1000, 500]);
  });

  it('draws YOLOv5 panels, breaks lines at NaN and marks empty columns', () => {
    const rows = [0, 1, 2, 3, 4, 5].map((e) => ({ ...fakeRow(e) }) as Record<string, number>);
    const svg = renderResultsSvg({ columns: [...RESULTS_COLUMNS], rows }, 1200, 600);
    const titles = [...svg.matchAll(/<text[^>]*font-size="13"[^>]*>([^<]+)<\/text>/g)].map((m) => m[1]);
    expect(titles).toEqual([
      'train/box_loss', 'train/obj_loss', 'train/cls_loss', 'metrics/precision', 'metrics/recall',
      'val/box_loss', 'val/obj_loss', 'val/cls_loss', 'metrics/mAP_0.5', 'metrics/mAP_0.5:0.95',
    ]);
    expect(svg).not.toMatch(/NaN|Infinity/);
    expect(svg.match(/no data/g)).toHaveLength(1); // val/cls_loss is all NaN
    const mapPath = [...svg.matchAll(/<path d="([^"]+)" fill="none" stroke="#1f77b4"/g)][7]![1]!; // 8th line: val/cls_loss has none
    expect(mapPath.match(/M/g)).toHaveLength(2); // epoch 3 is NaN: two segments
    expect(mapPath.match(/L/g)).toHaveLength(3);
  });

  it('rejects tiny sizes', async () => {
    await expect(plotResults(join(dir, 'plot1.csv'), join(dir, 'bad.png'), { width: 10, height: 500 })).rejects.toThrow(RangeError);
  });
});
