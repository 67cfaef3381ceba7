/**
 * The parts of numpy 2 (NEP 50 promotion) that ORT's `HistogramCollector` relies on, reproduced bit for bit for
 * float32 data: `np.histogram` with equal bins (float32 `linspace` edges and numpy's index correction), with explicit
 * edges, float32 floor division and `np.arange` on float32 scalars. Internal to the calibration collectors.
 */

const f = Math.fround;

/** A histogram: `counts[i]` values fell in `[edges[i], edges[i+1])`, the last bin also holding `edges[n]`. */
export interface Histogram {
  counts: Float64Array;
  edges: Float64Array;
}

/** numpy `_get_outer_edges`: an empty range [v, v] becomes [v - 0.5, v + 0.5] (float32 arithmetic). */
export function outerEdges32(first: number, last: number): [number, number] {
  return first === last ? [f(first - 0.5), f(last + 0.5)] : [first, last];
}

/** `np.linspace(first, last, n + 1, dtype=float32)` with float32 endpoints, computed in float32 as numpy 2 does. */
export function linspace32(first: number, last: number, n: number): Float64Array {
  const edges = new Float64Array(n + 1);
  const delta = f(last - first);
  const step = f(delta / n);
  for (let i = 0; i < n; i++) {
    // numpy divides first when the step underflows to 0 (denormal ranges, gh-5437).
    edges[i] = f((step === 0 ? f(f(i / n) * delta) : f(i * step)) + first);
  }
  edges[n] = last;
  return edges;
}

function checkIncreasing(edges: Float64Array): void {
  for (let i = 0; i + 1 < edges.length; i++) {
    if (!(edges[i] < edges[i + 1])) {
      throw new RangeError(
        `too many histogram bins for the data range [${edges[0]}, ${edges[edges.length - 1]}]: ` +
          `float32 cannot make ${edges.length - 1} distinct bins (numpy raises here too)`,
      );
    }
  }
}

/**
 * `np.histogram(values, n, range=(first, last))` for float32 values and float32 range (or of |values| when `abs`):
 * values outside the range are dropped, the last bin is closed.
 */
export function histogramUniform32(
  values: Float32Array,
  first: number,
  last: number,
  n: number,
  abs = false,
): Histogram {
  [first, last] = outerEdges32(first, last);
  const edges = linspace32(first, last, n);
  checkIncreasing(edges);
  const counts = new Float64Array(n);
  const denom = f(last - first);
  for (let i = 0; i < values.length; i++) {
    const x = abs ? Math.abs(values[i]) : values[i];
    if (!(x >= first && x <= last)) continue;
    // numpy's guess in float32, then its one-step corrections against the edges.
    let idx = Math.trunc(f(f(f(x - first) / denom) * n));
    if (idx === n) idx--;
    if (x < edges[idx]) idx--;
    if (idx !== n - 1 && x >= edges[idx + 1]) idx++;
    counts[idx]++;
  }
  return { counts, edges };
}

/** `np.histogram(values, bins=edges)` (or of |values|): searchsorted semantics, values outside the edges dropped. */
export function histogramWithEdges(values: Float32Array, edges: Float64Array, abs = false): Float64Array {
  const n = edges.length - 1;
  const counts = new Float64Array(n);
  const first = edges[0];
  const last = edges[n];
  for (let i = 0; i < values.length; i++) {
    const x = abs ? Math.abs(values[i]) : values[i];
    if (!(x >= first && x <= last)) continue;
    // Bin = (number of edges <= x) - 1, the last edge closing the last bin.
    let lo = 0;
    let hi = n + 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (edges[mid] <= x) lo = mid + 1;
      else hi = mid;
    }
    counts[Math.min(lo - 1, n - 1)]++;
  }
  return counts;
}

/** numpy `floor_divide` on float32 scalars (`npy_divmodf`: fmod, then snap the quotient to an integer). */
export function floorDivide32(a: number, b: number): number {
  const mod = a % b;
  let div = f(f(a - mod) / b);
  if (mod !== 0 && b < 0 !== mod < 0) div = f(div - 1);
  if (div === 0) return 0;
  let floordiv = Math.floor(div);
  if (div - floordiv > 0.5) floordiv += 1;
  return floordiv;
}

/**
 * `np.arange(start, stop, step)` on float32 scalars: numpy returns float64, sizes it with a float32 division, sets
 * element 1 to the float32 sum `start + step` and fills the rest as `start + i·delta` in float64.
 */
export function arangeFloat32Scalars(start: number, stop: number, step: number): Float64Array {
  const length = Math.max(Math.ceil(f(f(stop - start) / step)), 0);
  const out = new Float64Array(length);
  if (length > 0) out[0] = start;
  if (length > 1) {
    out[1] = f(start + step);
    const delta = out[1] - start;
    for (let i = 2; i < length; i++) out[i] = start + i * delta;
  }
  return out;
}
