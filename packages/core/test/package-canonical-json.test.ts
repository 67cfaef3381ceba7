import { describe, expect, it } from 'vitest';
import { canonicalJson, canonicalJsonBytes } from '../src/package/canonical-json.js';

describe('canonicalJson', () => {
  it('matches the worked example of RFC 8785 §3.2.2', () => {
    const input = JSON.parse(String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`);
    expect(canonicalJson(input)).toBe(String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`);
  });

  it('sorts keys by UTF-16 code units (RFC 8785 §3.2.3), not by code points', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    // Read the keys off the text: Object.keys would put the integer-like "1" first.
    const keys = [...canonicalJson(input).matchAll(/"((?:[^"\\]|\\.)*)":/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
    // The emoji (surrogate 0xD83D) sorts before U+FB33 although its code point is larger.
    expect(keys).toEqual(['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33']);
  });

  it('sorts nested objects, keeps array order and adds no whitespace', () => {
    expect(canonicalJson({ b: { d: 1, c: [3, { z: 0, a: null }] }, a: 'x' })).toBe('{"a":"x","b":{"c":[3,{"a":null,"z":0}],"d":1}}');
    expect(canonicalJson([])).toBe('[]');
    expect(canonicalJson({})).toBe('{}');
    expect(canonicalJson(Object.create(null))).toBe('{}');
  });

  it('writes numbers in their ECMAScript shortest form', () => {
    expect(canonicalJson([1e21, 1e20, -0, 0.1 + 0.2, 5e-324, -1.7976931348623157e308, 1e-7, 100, 1.5e300])).toBe(
      '[1e+21,100000000000000000000,0,0.30000000000000004,5e-324,-1.7976931348623157e+308,1e-7,100,1.5e+300]',
    );
  });

  it('keeps non-ASCII text as UTF-8 and escapes only what JSON requires', () => {
    expect(canonicalJson({ name: 'kočka 🐱', tab: '\t', del: '\u007f' })).toBe('{"del":"\u007f","name":"kočka 🐱","tab":"\\t"}');
    expect([...canonicalJsonBytes('é')]).toEqual([0x22, 0xc3, 0xa9, 0x22]);
  });

  it('refuses what JSON cannot hold, naming where it is', () => {
    expect(() => canonicalJson({ a: [1, Number.NaN] })).toThrow(/\$\.a\[1\] is NaN/);
    expect(() => canonicalJson({ a: Infinity })).toThrow(RangeError);
    expect(() => canonicalJson({ a: undefined })).toThrow(/\$\.a is a undefined/);
    expect(() => canonicalJson({ f: () => 1 })).toThrow(/function/);
    expect(() => canonicalJson(10n)).toThrow(/bigint/);
    expect(() => canonicalJson({ s: Symbol('x') })).toThrow(/symbol/);
    expect(() => canonicalJson({ d: new Date(0) })).toThrow(/\$\.d is a Date object/);
    expect(() => canonicalJson(new Map())).toThrow(/Map/);
    expect(() => canonicalJson({ [Symbol('k')]: 1 })).toThrow(/symbol keys/);
    expect(() => canonicalJson([1, , 3])).toThrow(/hole/);
    expect(() => canonicalJson({ s: 'a\ud800b' })).toThrow(/lone UTF-16 surrogate/);
    expect(() => canonicalJson({ '\udc00': 1 })).toThrow(/lone UTF-16 surrogate/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/cycle/);
  });

  it('allows the same object twice when it is not a cycle', () => {
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });
});
