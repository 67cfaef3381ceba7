import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WeightsError } from '../src/errors.js';
import { type GlobalHandler, PickleGlobal, PickleObject, type PickleValue, readPickle, VALUE_ONLY } from '../src/import/pickle-reader.js';

// Written by fixtures/torch/make-torch-fixtures.py: one value tree pickled with protocols 0–5, and its tagged JSON.
const FIXTURES = join(import.meta.dirname, 'fixtures/torch');
const fixture = (name: string): Uint8Array => readFileSync(join(FIXTURES, name));

const pathGlobal: GlobalHandler = { call: (args) => args.join('/') };
const VALUE_OPTIONS = {
  classes: ['models.common.Conv', 'torch.nn.modules.activation.SiLU'],
  globals: new Map([['pathlib.PurePosixPath', pathGlobal]]),
};

/** A PickleValue in the tagged JSON form make-torch-fixtures.py writes. */
function tagged(v: PickleValue): unknown {
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(tagged);
  if (v instanceof Set) return { $set: [...v].map(tagged).sort((a, b) => Number(a) - Number(b)) };
  if (v instanceof Map) return { $dict: [...v].map(([k, x]) => [tagged(k), tagged(x)]) };
  if (v instanceof PickleObject) {
    const state = v.state as Map<string, PickleValue>;
    return { $obj: v.className, training: state.get('training'), modules: (state.get('_modules') as Map<string, PickleValue>).size };
  }
  return v;
}

/** Runs `fn`, returning the error it throws (or undefined). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err;
  }
}

const bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');

describe('readPickle', () => {
  const expected = JSON.parse(readFileSync(join(FIXTURES, 'values.json'), 'utf8')) as unknown;

  it.each([0, 1, 2, 3, 4, 5])('reads the value tree pickled with protocol %i', (proto) => {
    const value = readPickle(fixture(`values-p${proto}.pkl`), { source: `p${proto}`, ...VALUE_OPTIONS });
    expect(tagged(value)).toEqual(expected);
    // The memo keeps Python's sharing: both entries are one list object.
    const shared = (value as Map<string, PickleValue>).get('shared') as PickleValue[][];
    expect(shared[0]).toBe(shared[1]);
    // A module comes back as an inert record of its __dict__, its submodule too.
    const conv = (value as Map<string, PickleValue>).get('module') as PickleObject;
    const act = ((conv.state as Map<string, PickleValue>).get('_modules') as Map<string, PickleValue>).get('act');
    expect(act).toBeInstanceOf(PickleObject);
    expect((act as PickleObject).className).toBe('torch.nn.modules.activation.SiLU');
  });

  it('keeps dict order and non-string keys', () => {
    const value = readPickle(fixture('values-p2.pkl'), VALUE_OPTIONS) as Map<PickleValue, PickleValue>;
    expect([...value.keys()].slice(0, 4)).toEqual(['none', 'true', 'false', 'int']);
    expect([...(value.get('int_keys') as Map<PickleValue, PickleValue>).keys()]).toEqual([0, 1]);
  });

  describe('refuses globals off the allow-list', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kd-pickle-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const marker = join(dir, 'pwned');

    // Each of these would run `touch marker` under Python's pickle.load.
    const attacks: Array<[string, string, Uint8Array]> = [
      ['protocol 0 GLOBAL', 'os.system', bytes(`cos\nsystem\n(S'touch ${marker}'\ntR.`)],
      ['protocol 0 echo', 'os.system', bytes(`cos\nsystem\n(S'echo hi'\ntR.`)],
      ['protocol 2 posix', 'posix.system', protocol2Call('posix', 'system', `touch ${marker}`)],
      ['protocol 4 STACK_GLOBAL', 'os.system', protocol4Call('os', 'system', `touch ${marker}`)],
      ['builtins.eval', '__builtin__.eval', bytes(`c__builtin__\neval\n(S'1+1'\ntR.`)],
      ['builtins.getattr', 'builtins.getattr', protocol4Call('builtins', 'getattr', 'x')],
      ['subprocess.Popen via INST', 'subprocess.Popen', bytes(`(S'touch ${marker}'\nisubprocess\nPopen\n.`)],
      ['inside a dict value', 'os.system', bytes(`(dp0\nS'a'\ncos\nsystem\n(S'id'\ntRs.`)],
      ['as a _reconstructor class', 'os.system', bytes(`ccopy_reg\n_reconstructor\n(cos\nsystem\nc__builtin__\nobject\nNtR.`)],
    ];

    it.each(attacks)('%s', (_, global, data) => {
      const err = thrown(() => readPickle(data, { source: 'evil.pkl' }));
      expect(err).toBeInstanceOf(WeightsError);
      expect((err as WeightsError).code).toBe('WEIGHTS_INVALID');
      expect((err as Error).message).toContain(`refusing pickle global ${global}`);
      expect((err as Error).message).toContain('evil.pkl');
      expect(existsSync(marker)).toBe(false);
    });

    it('refuses a class that was not allowed even when the module is', () => {
      const data = bytes('cmodels.common\nEvil\n)\x81.');
      expect(() => readPickle(data, { classes: ['models.common.Conv'] })).toThrow(/refusing pickle global models\.common\.Evil/);
    });

    it('refuses to call a global that is allowed only as a value', () => {
      expect(() => readPickle(bytes('c__builtin__\nobject\n)R.'))).toThrow(/refusing to call pickle global builtins\.object/);
      const globals = new Map([['torch.HalfStorage', VALUE_ONLY]]);
      const v = readPickle(bytes('ctorch\nHalfStorage\n.'), { globals });
      expect(v).toBeInstanceOf(PickleGlobal);
      expect((v as PickleGlobal).fullName).toBe('torch.HalfStorage');
    });

    it('refuses persistent ids without a loader, and extension codes', () => {
      expect(() => readPickle(bytes("\x80\x02X\x01\x00\x00\x00xQ."))).toThrow(/persistent id/);
      expect(() => readPickle(bytes('\x80\x02\x82\x01.'))).toThrow(/extension registry/);
    });
  });

  describe('guards', () => {
    it('stops at the nesting limit instead of growing without bound', () => {
      const deep = bytes(`${'('.repeat(5000)}N${'t'.repeat(5000)}.`);
      expect(() => readPickle(deep)).toThrow(/nests deeper than 1000 levels/);
      expect(() => readPickle(bytes(`${'('.repeat(20)}N${'t'.repeat(20)}.`), { maxDepth: 10 })).toThrow(WeightsError);
      expect(readPickle(bytes(`${'('.repeat(20)}N${'t'.repeat(20)}.`))).toBeDefined();
    });

    it('stops at the value limit', () => {
      const many = bytes(`(${'N'.repeat(1000)}l.`);
      expect(() => readPickle(many, { maxItems: 100 })).toThrow(/more than 100 values/);
      expect((readPickle(many) as PickleValue[]).length).toBe(1000);
    });

    it('refuses lengths past the end and oversized integers', () => {
      expect(() => readPickle(bytes('\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.'))).toThrow(/larger than the pickle/);
      expect(() => readPickle(bytes('\x80\x02X\xff\xff\xff\xffabc.'))).toThrow(/truncated pickle/);
      expect(() => readPickle(bytes(`\x80\x02\x8b\x00\x00\x10\x00${'\x01'.repeat(16)}.`))).toThrow(/too large/);
    });

    it('names unknown opcodes and where they are', () => {
      expect(() => readPickle(bytes('\x80\x02\xff.'), { source: 'x.pkl' })).toThrow(/x\.pkl: unknown pickle opcode 0xff \(opcode at byte 2\)/);
    });

    it.each([0, 2, 4])('throws only WeightsError for every truncation of a protocol-%i pickle', (proto) => {
      const data = fixture(`values-p${proto}.pkl`);
      for (let cut = 0; cut < data.length; cut++) {
        const err = thrown(() => readPickle(data.subarray(0, cut), VALUE_OPTIONS));
        expect(err, `cut at ${cut}`).toBeInstanceOf(WeightsError);
      }
    });

    it.each([0, 2, 5])('throws only WeightsError for corrupted bytes of a protocol-%i pickle', (proto) => {
      const data = fixture(`values-p${proto}.pkl`);
      let seed = 12345 + proto;
      const rand = (): number => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return seed / 2 ** 32;
      };
      for (let trial = 0; trial < 3000; trial++) {
        const copy = new Uint8Array(data);
        const flips = 1 + Math.floor(rand() * 3);
        for (let f = 0; f < flips; f++) copy[Math.floor(rand() * copy.length)] = Math.floor(rand() * 256);
        const err = thrown(() => readPickle(copy, VALUE_OPTIONS));
        if (err !== undefined) expect(err, `trial ${trial}`).toBeInstanceOf(WeightsError);
      }
    });
  });
});

/** A protocol-2 pickle of `module.name(arg)`: GLOBAL, BINUNICODE, TUPLE1, REDUCE. */
function protocol2Call(module: string, name: string, arg: string): Uint8Array {
  const a = Buffer.from(arg, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(a.length);
  return Buffer.concat([bytes(`\x80\x02c${module}\n${name}\nq\x00X`), len, a, bytes('q\x01\x85q\x02Rq\x03.')]);
}

/** A protocol-4 pickle of `module.name(arg)`, framed, through STACK_GLOBAL. */
function protocol4Call(module: string, name: string, arg: string): Uint8Array {
  const short = (s: string): Buffer => Buffer.concat([Buffer.from([0x8c, Buffer.byteLength(s)]), Buffer.from(s)]);
  const body = Buffer.concat([short(module), bytes('\x94'), short(name), bytes('\x94\x93\x94'), short(arg), bytes('\x94\x85\x94R\x94.')]);
  const frame = Buffer.alloc(8);
  frame.writeBigUInt64LE(BigInt(body.length));
  return Buffer.concat([bytes('\x80\x04\x95'), frame, body]);
}
