// @ts-check
// A device's latency history as an SVG line chart: p50 and p95 (ms) over time, oldest first.

import { clock, h, num, svg } from './dom.js';

/** @import { LatencyPoint } from '../api-types.js' */

const W = 640;
const H = 220;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };
/** Points kept on screen; older ones scroll off as live reports arrive. */
export const MAX_POINTS = 200;

/** @param {LatencyPoint} p */
function tsOf(p) {
  return typeof p.ts === 'number' ? p.ts : Date.parse(p.ts);
}

/**
 * Draws `points` ([{ts, p50, p95, fps}]) into `container`, replacing what was there.
 * @param {HTMLElement} container
 * @param {readonly LatencyPoint[]} points
 */
export function renderLatencyChart(container, points) {
  container.replaceChildren();
  const pts = points.filter((p) => Number.isFinite(tsOf(p)) && typeof p.p50 === 'number' && typeof p.p95 === 'number').slice(-MAX_POINTS);
  container.dataset.points = String(pts.length);
  if (pts.length === 0) {
    container.append(h('p', { class: 'muted', 'data-testid': 'latency-empty', text: 'No benchmark reports yet.' }));
    return;
  }
  const t0 = tsOf(pts[0]);
  const t1 = Math.max(tsOf(pts[pts.length - 1]), t0 + 1);
  const yMax = Math.max(...pts.map((p) => p.p95), ...pts.map((p) => p.p50)) * 1.1 || 1;
  /** @param {number} t */
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
  /** @param {number} v */
  const y = (v) => H - PAD.bottom - (v / yMax) * (H - PAD.top - PAD.bottom);
  // A single report draws as a short flat line, so it is visible.
  /** @param {'p50' | 'p95'} key */
  const line = (key) => {
    if (pts.length === 1) return `${PAD.left},${y(pts[0][key])} ${W - PAD.right},${y(pts[0][key])}`;
    return pts.map((p) => `${x(tsOf(p)).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
  };

  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'latency p50 and p95 over time', 'data-testid': 'latency-svg' });
  for (const f of [0, 0.5, 1]) {
    const v = (yMax / 1.1) * f;
    root.append(svg('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    const label = svg('text', { class: 'axis', x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' });
    label.textContent = num(v, v < 10 ? 2 : 1);
    root.append(label);
  }
  const left = svg('text', { class: 'axis', x: PAD.left, y: H - 8, 'text-anchor': 'start' });
  left.textContent = clock(t0);
  const right = svg('text', { class: 'axis', x: W - PAD.right, y: H - 8, 'text-anchor': 'end' });
  right.textContent = clock(t1);
  const unit = svg('text', { class: 'axis', x: 4, y: PAD.top + 4 });
  unit.textContent = 'ms';
  root.append(left, right, unit);
  root.append(svg('polyline', { class: 'p95', points: line('p95'), 'data-testid': 'latency-p95' }));
  root.append(svg('polyline', { class: 'p50', points: line('p50'), 'data-testid': 'latency-p50' }));
  for (const p of pts.length <= 60 ? pts : []) {
    root.append(svg('circle', { class: 'p95', cx: x(tsOf(p)), cy: y(p.p95), r: 2.5 }));
    root.append(svg('circle', { class: 'p50', cx: x(tsOf(p)), cy: y(p.p50), r: 2.5 }));
  }
  const last = pts[pts.length - 1];
  const legend = h('div', { class: 'chart-legend', 'data-testid': 'latency-legend' },
    h('span', { class: 'key p50', text: `p50 ${num(last.p50, 2)} ms` }),
    h('span', { class: 'key p95', text: `p95 ${num(last.p95, 2)} ms` }),
    h('span', { class: 'muted', text: `${num(last.fps, 1)} fps · ${pts.length} reports` }));
  container.append(root, legend);
}
