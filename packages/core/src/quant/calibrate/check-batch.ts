/**
 * Validates one `add(name, values)` call and returns the batch's float32 min and max, or null when it is empty.
 * Non-finite values are refused: numpy's histogram raises on them and ReduceMin/ReduceMax would poison the range.
 */
export function checkBatch(name: unknown, values: unknown): [number, number] | null {
  if (typeof name !== 'string' || name.length === 0) {
    throw new TypeError(`name must be a non-empty string, got ${JSON.stringify(name)}`);
  }
  if (!(values instanceof Float32Array)) {
    throw new TypeError(`values of tensor ${JSON.stringify(name)} must be a Float32Array`);
  }
  if (values.length === 0) return null;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (!Number.isFinite(x)) {
      throw new RangeError(`values of tensor ${JSON.stringify(name)} must be finite, got ${x} at index ${i}`);
    }
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}
