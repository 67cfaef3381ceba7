/** A satisfiable byte range of a representation: `start` to `end` inclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Read a `Range` header against a representation of `size` bytes (RFC 9110 §14.1.2). Returns
 * `undefined` when the whole representation should be sent (no header, another unit, several ranges,
 * or a syntactically invalid one, all of which a server may ignore), `'unsatisfiable'` for a valid
 * range that selects nothing (answer 416), or the single range to send.
 * @example
 * parseByteRange('bytes=-500', 10_000); // { start: 9500, end: 9999 }
 */
export function parseByteRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`size must be an integer >= 0, got ${String(size)}`);
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(.*?)\s*$/i.exec(header);
  if (m === null) return undefined;
  const spec = m[1]!;
  // Serving several ranges needs multipart/byteranges; agents resume with one, so the rest get the whole file.
  if (spec.includes(',')) return undefined;
  const r = /^(\d*)-(\d*)$/.exec(spec);
  if (r === null) return undefined;
  const [, first, last] = r as unknown as [string, string, string];
  if (first === '' && last === '') return undefined;
  if (first === '') {
    // Suffix range: the last n bytes.
    const n = Number(last);
    if (!Number.isSafeInteger(n)) return undefined;
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? Infinity : Number(last);
  if (!Number.isSafeInteger(start) || (last !== '' && !Number.isSafeInteger(end))) return undefined;
  if (end < start) return undefined; // invalid range-spec: ignore the header
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}
