import { describe, expect, it } from 'vitest';
import {
  amaxFromCalibScale,
  calibScaleHex,
  parseCalibCache,
  trtVersionNumber,
  writeCalibCache,
} from '../src/tensorrt/calib-cache.js';
import { CalibCacheError } from '../src/tensorrt/errors.js';

describe('trtVersionNumber', () => {
  it('is major·1000 + minor·100 + patch before TensorRT 10', () => {
    expect(trtVersionNumber('8.6.1')).toBe(8601);
    expect(trtVersionNumber('7.1.3')).toBe(7103);
    expect(trtVersionNumber('8.5.2.2')).toBe(8502); // build number ignored
    expect(trtVersionNumber('8.6')).toBe(8600);
  });

  it('is major·10000 + minor·100 + patch from TensorRT 10 (trtexec prints v100300 for 10.3.0)', () => {
    expect(trtVersionNumber('10.3.0')).toBe(100300);
    expect(trtVersionNumber('10.13.2')).toBe(101302);
  });

  it('rejects malformed versions', () => {
    for (const v of ['8', 'v8.6.1', '8.6.1-rc', '', '8.10.1', '0.1.0']) {
      expect(() => trtVersionNumber(v), v).toThrow(RangeError);
    }
  });
});

describe('calibScaleHex', () => {
  it('matches the SPECS vectors', () => {
    expect(calibScaleHex(1)).toBe('3c010204');
    expect(calibScaleHex(127)).toBe('3f800000');
  });

  it('amax 2 → 3c810204, worked by hand', () => {
    // 2/127 = 2^-6 · (128/127) and 128/127 = 1 + 2^-7 + 2^-14 + 2^-21 + 2^-28 + …
    // mantissa bits 7, 14, 21 → 2^16 + 2^9 + 2^2 = 0x10204 (the 2^-28 term rounds away);
    // exponent −6 + 127 = 121 = 0x79 → 0x79 << 23 = 0x3c800000; 0x3c800000 + 0x10204 = 0x3c810204.
    expect(calibScaleHex(2)).toBe('3c810204');
  });

  it('prints no zero padding', () => {
    // amax = 127 · 2^-149 → scale 2^-149, the smallest float32, bits 0x00000001.
    expect(calibScaleHex(127 * 2 ** -149)).toBe('1');
    expect(calibScaleHex(0)).toBe('0');
  });

  it('rejects negative or non-finite amax', () => {
    expect(() => calibScaleHex(-1)).toThrow(RangeError);
    expect(() => calibScaleHex(NaN)).toThrow(RangeError);
  });
});

describe('writeCalibCache', () => {
  it('writes the header and one "name: hex" line per tensor, amax = max(|min|, |max|)', () => {
    const text = writeCalibCache(
      new Map([
        ['images', { min: 0, max: 1 }],
        ['/model.0/conv/Conv_output_0', { min: -127, max: 3 }],
      ]),
      { trtVersion: '8.6.1' },
    );
    expect(text).toBe('TRT-8601-EntropyCalibration2\nimages: 3c010204\n/model.0/conv/Conv_output_0: 3f800000\n');
  });

  it('takes amax values and another algorithm', () => {
    expect(writeCalibCache(new Map([['x', 2]]), { trtVersion: '10.3.0', algorithm: 'MinMaxCalibration' })).toBe(
      'TRT-100300-MinMaxCalibration\nx: 3c810204\n',
    );
  });

  it('refuses names readers would split, bad algorithms and bad ranges', () => {
    expect(() => writeCalibCache(new Map([['input:0', 1]]), { trtVersion: '8.6.1' })).toThrow(/':'/);
    expect(() => writeCalibCache(new Map([['a\nb', 1]]), { trtVersion: '8.6.1' })).toThrow(RangeError);
    expect(() => writeCalibCache(new Map([['', 1]]), { trtVersion: '8.6.1' })).toThrow(RangeError);
    expect(() =>
      writeCalibCache(new Map([['x', 1]]), { trtVersion: '8.6.1', algorithm: 'Entropy' as 'EntropyCalibration' }),
    ).toThrow(/algorithm/);
    expect(() => writeCalibCache(new Map([['x', { min: NaN, max: 1 }]]), { trtVersion: '8.6.1' })).toThrow(/finite/);
    expect(() => writeCalibCache(new Map([['x', -2]]), { trtVersion: '8.6.1' })).toThrow(/amax/);
    expect(() => writeCalibCache(new Map([['x', 1]]), { trtVersion: '8.x' })).toThrow(/trtVersion/);
  });
});

describe('parseCalibCache', () => {
  it('reads the SPECS MNIST vector: 3c008912 → scale 0.0078452, amax 0.9963', () => {
    const c = parseCalibCache('TRT-7103-EntropyCalibration2\ndata: 3c008912\n');
    expect(c.version).toBe(7103);
    expect(c.algorithm).toBe('EntropyCalibration2');
    expect(c.scales.get('data')).toBeCloseTo(0.0078452, 7);
    expect(amaxFromCalibScale(c.scales.get('data')!)).toBeCloseTo(0.9963, 4);
  });

  it('round-trips what writeCalibCache writes, scale = float32(amax / 127)', () => {
    const amax = new Map([
      ['images', 1],
      ['a', 6.25],
      ['b', 1e-3],
      ['zero', 0],
    ]);
    const parsed = parseCalibCache(writeCalibCache(amax, { trtVersion: '8.6.1' }));
    expect([...parsed.scales.keys()]).toEqual([...amax.keys()]);
    for (const [name, a] of amax) expect(parsed.scales.get(name)).toBe(Math.fround(a / 127));
    expect(amaxFromCalibScale(parsed.scales.get('a')!)).toBe(6.25);
  });

  it("splits at the last ':' so TensorRT names like input:0 survive; CRLF and blank lines are fine", () => {
    const c = parseCalibCache('TRT-8601-EntropyCalibration2\r\ninput:0: 3f800000\r\n\r\nout:  3c010204\r\n');
    expect([...c.scales]).toEqual([
      ['input:0', 1],
      ['out', Math.fround(1 / 127)],
    ]);
  });

  it('keeps the last value of a repeated name, as ORT does', () => {
    expect(parseCalibCache('TRT-8601-EntropyCalibration2\nx: 3c010204\nx: 3f800000\n').scales.get('x')).toBe(1);
  });

  it('reports the offending line', () => {
    const err = (text: string): CalibCacheError => {
      try {
        parseCalibCache(text);
      } catch (e) {
        return e as CalibCacheError;
      }
      throw new Error('no error');
    };
    expect(err('x: 3c010204\n')).toMatchObject({ code: 'TRT_CALIB_CACHE_INVALID', line: 1 });
    expect(err('TRT-8601-EntropyCalibration2\nx: 3c010204\ny 3f800000\n')).toMatchObject({ line: 3 });
    expect(err('TRT-8601-EntropyCalibration2\nx: 0x3f80\n')).toMatchObject({ line: 2 });
    expect(err('TRT-8601-EntropyCalibration2\nx: 13f800000\n')).toBeInstanceOf(CalibCacheError);
  });
});
