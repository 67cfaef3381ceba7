/** Float32 copies of `values` (numbers are rounded to float32 first), with their bits alongside. */
function asFloat32Bits(values: ArrayLike<number>): Uint32Array {
  const f = values instanceof Float32Array ? values : Float32Array.from(values);
  // A Float32Array may sit at any 4-aligned offset, so view exactly its elements.
  return new Uint32Array(f.buffer, f.byteOffset, f.length);
}

/**
 * IEEE-754 binary16 bits of each value, rounded to nearest even as numpy's `astype(float16)` does:
 * subnormal results keep their precision, values from 65520 up become ±Infinity, NaN stays NaN
 * (quiet, keeping the top payload bits). Numbers that are not float32 are rounded to float32 first.
 * @example float32ToFloat16Bits(new Float32Array([1, -2, 65504])) // Uint16Array [0x3c00, 0xc000, 0x7bff]
 */
export function float32ToFloat16Bits(values: ArrayLike<number>): Uint16Array {
  const bits = asFloat32Bits(values);
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7f_ffff;
    if (exp === 0xff) {
      out[i] = mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      // Subnormal half (or zero): shift the significand, implicit bit included, into 10 bits.
      const shift = 14 - e;
      if (shift > 24) {
        out[i] = sign;
        continue;
      }
      const m = mant | 0x80_0000;
      let h = m >>> shift;
      const rem = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && (h & 1) === 1)) h++;
      out[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    // A carry out of the mantissa correctly bumps the exponent, up to Infinity.
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
    out[i] = sign | h;
  }
  return out;
}

/** Float32 values of IEEE-754 binary16 bits (exact: every half is a float32). */
export function float16BitsToFloat32(bits: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i] & 0xffff;
    const sign = (h & 0x8000) << 16;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) {
      out[i] = m * 2 ** -24;
      if (sign) outBits[i] |= 0x8000_0000;
    } else if (e === 0x1f) outBits[i] = (sign | 0x7f80_0000 | (m << 13)) >>> 0;
    else outBits[i] = (sign | ((e + 112) << 23) | (m << 13)) >>> 0;
  }
  return out;
}

/** bfloat16 bits of each value (the top half of its float32, rounded to nearest even; NaN stays NaN). */
export function float32ToBfloat16Bits(values: ArrayLike<number>): Uint16Array {
  const bits = asFloat32Bits(values);
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    if ((x & 0x7f80_0000) === 0x7f80_0000 && (x & 0x7f_ffff) !== 0) out[i] = (x >>> 16) | 0x40;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Float32 values of bfloat16 bits (exact). */
export function bfloat16BitsToFloat32(bits: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = (bits[i] & 0xffff) << 16 >>> 0;
  return out;
}
