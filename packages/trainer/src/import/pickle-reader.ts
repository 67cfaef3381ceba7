import { WeightsError } from '../errors.js';

/**
 * A value the unpickler produced. Python `None`/bool/int/float/str/bytes map to JS null/boolean/number (bigint past
 * 2^53)/string/Uint8Array; list and tuple to arrays; dict and OrderedDict to `Map` (insertion order kept); set and
 * frozenset to `Set`; instances of allowed classes to {@link PickleObject}; allowed globals used as values (a storage
 * type, a dtype) to {@link PickleGlobal}; anything a global handler builds (a tensor) to a {@link PickleOpaque}.
 */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleDict
  | Set<PickleValue>
  | PickleObject
  | PickleGlobal
  | PickleOpaque;

/** A Python dict or OrderedDict. Keys that are numbers, strings, booleans or null compare by value, others by identity. */
export type PickleDict = Map<PickleValue, PickleValue>;

/** A value built by a global handler that the reader treats as a black box; `pyType` says what it stands for. */
export interface PickleOpaque {
  readonly pyType: string;
}

/**
 * An instance of an allowed class, rebuilt as inert data: no Python code runs. `state` is what BUILD gave it
 * (for an `nn.Module`, its `__dict__` as a Map); `args` are the constructor arguments the pickle recorded.
 */
export class PickleObject {
  state: PickleValue = null;
  constructor(
    readonly className: string,
    readonly args: PickleValue[] = [],
  ) {}
}

/** What an allowed global does when the pickle calls it (REDUCE, NEWOBJ) or BUILDs the result. */
export interface GlobalHandler {
  /** Builds the value for `global(*args)`. Without it, calling the global is refused. */
  call?(args: PickleValue[], global: PickleGlobal): PickleValue;
  /** True for classes whose instances are {@link PickleObject} records (see {@link recordClass}). */
  readonly isClass?: boolean;
}

/** A global the pickle named (`module.name`) that the allow-list let through. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly handler: GlobalHandler,
  ) {}
  /** `module.name`. */
  get fullName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** Options of {@link readPickle}. */
export interface PickleReaderOptions {
  /** Names the pickle in error messages (e.g. `yolov5n.pt:yolov5n/data.pkl`). */
  source?: string;
  /** Extra allowed globals by `module.name`, on top of {@link SAFE_GLOBALS}. */
  globals?: ReadonlyMap<string, GlobalHandler>;
  /** Classes whose instances become {@link PickleObject} records, by `module.name`. */
  classes?: Iterable<string>;
  /** Resolves a persistent id (BINPERSID); without it, persistent ids are refused. */
  persistentLoad?(pid: PickleValue): PickleValue;
  /** Deepest MARK nesting accepted (default 1000). */
  maxDepth?: number;
  /** Most values on the stack plus memo entries (default 50 000 000). */
  maxItems?: number;
}

/** Builds a class handler: calling the class makes a {@link PickleObject} record of it. */
export function recordClass(): GlobalHandler {
  return { isClass: true, call: (args, g) => new PickleObject(g.fullName, args) };
}

/** A global that may only be used as a value (a storage type, a dtype), never called. */
export const VALUE_ONLY: GlobalHandler = Object.freeze({});

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

function isObjectClass(v: PickleValue): v is PickleGlobal {
  return v instanceof PickleGlobal && v.handler.isClass === true && v.handler.call !== undefined;
}

/**
 * Globals every pickle may use: containers and byte-string helpers that Python's pickler emits for plain data.
 * None of them runs code; each builds a plain JS value.
 */
export const SAFE_GLOBALS: ReadonlyMap<string, GlobalHandler> = new Map<string, GlobalHandler>([
  [
    'collections.OrderedDict',
    {
      call: (args) => {
        const m: PickleDict = new Map();
        const items = args[0];
        if (Array.isArray(items)) for (const kv of items) if (Array.isArray(kv) && kv.length === 2) m.set(kv[0]!, kv[1]!);
        return m;
      },
    },
  ],
  ['builtins.dict', { call: () => new Map() }],
  ['builtins.set', { call: (args) => new Set(iterableArg(args[0])) }],
  ['builtins.frozenset', { call: (args) => new Set(iterableArg(args[0])) }],
  ['builtins.object', VALUE_ONLY],
  // Protocol 2 writes b'' as bytes() and other bytes as _codecs.encode(latin-1 text, 'latin1').
  ['builtins.bytes', { call: (args) => toBytes(args) }],
  ['builtins.bytearray', { call: (args) => new Uint8Array(toBytes(args)) }],
  ['_codecs.encode', { call: (args) => toBytes(args) }],
  [
    // Protocols 0 and 1 rebuild instances through copyreg._reconstructor(cls, object, None).
    'copyreg._reconstructor',
    {
      call: (args) => {
        const cls = args[0];
        if (!isObjectClass(cls) || !(args[1] instanceof PickleGlobal) || args[1].fullName !== 'builtins.object') {
          throw new TypeError('copyreg._reconstructor needs an allowed class and object');
        }
        return cls.handler.call!([], cls);
      },
    },
  ],
]);

function iterableArg(v: PickleValue | undefined): PickleValue[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return v;
  if (v instanceof Set) return [...v];
  throw new TypeError(`expected a list, got ${describeValue(v)}`);
}

function toBytes(args: PickleValue[]): Uint8Array {
  const [v, encoding] = args;
  if (v === undefined) return new Uint8Array(0);
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return Uint8Array.from(v.map((b) => (typeof b === 'number' ? b : NaN)));
  if (typeof v !== 'string') throw new TypeError(`cannot make bytes from ${describeValue(v)}`);
  const enc = typeof encoding === 'string' ? encoding.toLowerCase().replace(/[-_]/g, '') : 'utf8';
  if (enc === 'utf8') return utf8Encoder.encode(v);
  if (enc === 'latin1' || enc === 'iso88591' || enc === 'ascii') {
    const out = new Uint8Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i);
      if (c > 0xff) throw new TypeError(`character U+${c.toString(16)} does not fit ${encoding}`);
      out[i] = c;
    }
    return out;
  }
  throw new TypeError(`unsupported encoding ${String(encoding)}`);
}

/** A short description of a value's type for error messages. */
export function describeValue(v: PickleValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Map) return 'a dict';
  if (v instanceof Set) return 'a set';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PickleObject) return `a ${v.className}`;
  if (v instanceof PickleGlobal) return v.fullName;
  if (typeof v === 'object') return `a ${v.pyType}`;
  return `a ${typeof v}`;
}

// Python 2 module names that protocol 2 pickles still use (pickle's fix_imports).
const MODULE_RENAMES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

// No tensor metadata needs more; a bound keeps BigInt arithmetic on hostile input cheap.
const MAX_LONG_BYTES = 1024;

/**
 * Unpickles `data` (protocols 0–5) without executing anything: globals resolve only through the allow-list
 * ({@link SAFE_GLOBALS}, `options.globals`, `options.classes`); any other global is a {@link WeightsError} naming it.
 * @example
 * const value = readPickle(bytes, { source: 'model.pt:archive/data.pkl', classes: ['models.common.Conv'] });
 */
export function readPickle(data: Uint8Array, options: PickleReaderOptions = {}): PickleValue {
  return new Unpickler(data, options).load();
}

class Unpickler {
  readonly #data: Uint8Array;
  readonly #view: DataView;
  readonly #source: string;
  readonly #globals: Map<string, GlobalHandler>;
  readonly #persistentLoad: ((pid: PickleValue) => PickleValue) | undefined;
  readonly #maxDepth: number;
  readonly #maxItems: number;
  #pos = 0;
  #op = 0;
  #stack: PickleValue[] = [];
  readonly #metastack: PickleValue[][] = [];
  readonly #memo = new Map<number, PickleValue>();

  constructor(data: Uint8Array, options: PickleReaderOptions) {
    this.#data = data;
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.#source = options.source ?? 'pickle';
    this.#globals = new Map(SAFE_GLOBALS);
    for (const [k, v] of options.globals ?? []) this.#globals.set(k, v);
    const cls = recordClass();
    for (const c of options.classes ?? []) if (!this.#globals.has(c)) this.#globals.set(c, cls);
    this.#persistentLoad = options.persistentLoad;
    this.#maxDepth = options.maxDepth ?? 1000;
    this.#maxItems = options.maxItems ?? 50_000_000;
  }

  load(): PickleValue {
    try {
      return this.#run();
    } catch (err) {
      if (err instanceof WeightsError) throw err;
      // Anything else (a RangeError from a bad length, a TypeError from a handler) is still the file's fault.
      throw this.#error(`malformed pickle: ${(err as Error).message}`, err);
    }
  }

  #run(): PickleValue {
    const d = this.#data;
    for (;;) {
      if (this.#pos >= d.length) throw this.#error('truncated pickle: no STOP opcode before the end');
      this.#op = this.#pos;
      const op = d[this.#pos++]!;
      switch (op) {
        case 0x80: { // PROTO
          const v = this.#u8();
          if (v > 5) throw this.#error(`unsupported pickle protocol ${v}`);
          break;
        }
        case 0x95: { // FRAME: a length prefix only; the bytes follow inline.
          const n = this.#u64();
          if (this.#pos + n > d.length) throw this.#error('truncated pickle frame');
          break;
        }
        case 0x2e: { // STOP
          const v = this.#pop();
          return v;
        }
        // Marks and stack shuffling.
        case 0x28: // MARK
          if (this.#metastack.length >= this.#maxDepth) throw this.#error(`pickle nests deeper than ${this.#maxDepth} levels`);
          this.#metastack.push(this.#stack);
          this.#stack = [];
          break;
        case 0x30: // POP
          if (this.#stack.length > 0) this.#stack.pop();
          else this.#popMark();
          break;
        case 0x31: // POP_MARK
          this.#popMark();
          break;
        case 0x32: // DUP
          this.#push(this.#top());
          break;
        // Constants and numbers.
        case 0x4e: // NONE
          this.#push(null);
          break;
        case 0x88: // NEWTRUE
          this.#push(true);
          break;
        case 0x89: // NEWFALSE
          this.#push(false);
          break;
        case 0x4a: // BININT
          this.#push(this.#view.getInt32(this.#take(4), true));
          break;
        case 0x4b: // BININT1
          this.#push(this.#u8());
          break;
        case 0x4d: // BININT2
          this.#push(this.#view.getUint16(this.#take(2), true));
          break;
        case 0x8a: // LONG1
          this.#push(this.#long(this.#u8()));
          break;
        case 0x8b: { // LONG4
          const n = this.#view.getInt32(this.#take(4), true);
          if (n < 0) throw this.#error('negative LONG4 length');
          this.#push(this.#long(n));
          break;
        }
        case 0x47: // BINFLOAT (big-endian, pickletools)
          this.#push(this.#view.getFloat64(this.#take(8), false));
          break;
        case 0x49: { // INT (text); I00/I01 are protocol 0's False/True
          const s = this.#line();
          if (s === '00') this.#push(false);
          else if (s === '01') this.#push(true);
          else this.#push(this.#parseInt(s));
          break;
        }
        case 0x4c: // LONG (text, trailing L)
          this.#push(this.#parseInt(this.#line().replace(/L$/, '')));
          break;
        case 0x46: { // FLOAT (text)
          const s = this.#line();
          const v = Number(s);
          if (s.trim() === '' || (Number.isNaN(v) && !/^[+-]?nan$/i.test(s))) throw this.#error(`bad FLOAT ${JSON.stringify(s)}`);
          this.#push(v);
          break;
        }
        // Strings and bytes.
        case 0x58: // BINUNICODE
          this.#push(this.#utf8(this.#view.getUint32(this.#take(4), true)));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.#push(this.#utf8(this.#u8()));
          break;
        case 0x8d: // BINUNICODE8
          this.#push(this.#utf8(this.#u64()));
          break;
        case 0x56: // UNICODE (raw-unicode-escape text)
          this.#push(rawUnicodeEscape(this.#line()));
          break;
        case 0x53: // STRING (quoted Python 2 str)
          this.#push(this.#quoted(this.#line()));
          break;
        case 0x54: { // BINSTRING
          const n = this.#view.getInt32(this.#take(4), true);
          if (n < 0) throw this.#error('negative BINSTRING length');
          this.#push(latin1(this.#bytes(n)));
          break;
        }
        case 0x55: // SHORT_BINSTRING
          this.#push(latin1(this.#bytes(this.#u8())));
          break;
        case 0x42: // BINBYTES
          this.#push(this.#bytes(this.#view.getUint32(this.#take(4), true)));
          break;
        case 0x43: // SHORT_BINBYTES
          this.#push(this.#bytes(this.#u8()));
          break;
        case 0x8e: // BINBYTES8
          this.#push(this.#bytes(this.#u64()));
          break;
        case 0x96: // BYTEARRAY8
          this.#push(new Uint8Array(this.#bytes(this.#u64())));
          break;
        case 0x97: // NEXT_BUFFER
          throw this.#error('pickle uses out-of-band buffers (NEXT_BUFFER), which torch checkpoints never do');
        case 0x98: // READONLY_BUFFER
          this.#top();
          break;
        // Containers.
        case 0x7d: // EMPTY_DICT
          this.#push(new Map());
          break;
        case 0x5d: // EMPTY_LIST
          this.#push([]);
          break;
        case 0x29: // EMPTY_TUPLE
          this.#push([]);
          break;
        case 0x8f: // EMPTY_SET
          this.#push(new Set());
          break;
        case 0x85: // TUPLE1
          this.#push([this.#pop()]);
          break;
        case 0x86: { // TUPLE2
          const b = this.#pop();
          const a = this.#pop();
          this.#push([a, b]);
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.#pop();
          const b = this.#pop();
          const a = this.#pop();
          this.#push([a, b, c]);
          break;
        }
        case 0x74: // TUPLE
        case 0x6c: // LIST
          this.#push(this.#popMark());
          break;
        case 0x91: // FROZENSET
          this.#push(new Set(this.#popMark()));
          break;
        case 0x64: { // DICT
          const items = this.#popMark();
          if (items.length % 2) throw this.#error('DICT with an odd number of items');
          const m: PickleDict = new Map();
          for (let i = 0; i < items.length; i += 2) m.set(items[i]!, items[i + 1]!);
          this.#push(m);
          break;
        }
        case 0x61: { // APPEND
          const v = this.#pop();
          this.#list(this.#top(), 'APPEND').push(v);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.#popMark();
          const l = this.#list(this.#top(), 'APPENDS');
          for (const v of items) l.push(v);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.#pop();
          const k = this.#pop();
          this.#dict(this.#top(), 'SETITEM').set(k, v);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.#popMark();
          if (items.length % 2) throw this.#error('SETITEMS with an odd number of items');
          const m = this.#dict(this.#top(), 'SETITEMS');
          for (let i = 0; i < items.length; i += 2) m.set(items[i]!, items[i + 1]!);
          break;
        }
        case 0x90: { // ADDITEMS
          const items = this.#popMark();
          const s = this.#top();
          if (!(s instanceof Set)) throw this.#error(`ADDITEMS on ${describeValue(s)}`);
          for (const v of items) s.add(v);
          break;
        }
        // Memo.
        case 0x71: // BINPUT
          this.#put(this.#u8());
          break;
        case 0x72: // LONG_BINPUT
          this.#put(this.#view.getUint32(this.#take(4), true));
          break;
        case 0x70: // PUT (text)
          this.#put(this.#index(this.#line()));
          break;
        case 0x94: // MEMOIZE
          this.#put(this.#memo.size);
          break;
        case 0x68: // BINGET
          this.#push(this.#get(this.#u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.#push(this.#get(this.#view.getUint32(this.#take(4), true)));
          break;
        case 0x67: // GET (text)
          this.#push(this.#get(this.#index(this.#line())));
          break;
        // Globals, calls and objects.
        case 0x63: { // GLOBAL
          const module = this.#line();
          const name = this.#line();
          this.#push(this.#global(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.#pop();
          const module = this.#pop();
          if (typeof module !== 'string' || typeof name !== 'string') throw this.#error('STACK_GLOBAL needs two strings');
          this.#push(this.#global(module, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.#pop();
          const fn = this.#pop();
          this.#push(this.#call(fn, args));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.#pop();
          const cls = this.#pop();
          this.#push(this.#call(cls, args));
          break;
        }
        case 0x92: { // NEWOBJ_EX (keyword arguments are recorded nowhere: allowed classes are records)
          this.#pop();
          const args = this.#pop();
          const cls = this.#pop();
          this.#push(this.#call(cls, args));
          break;
        }
        case 0x69: { // INST
          const module = this.#line();
          const name = this.#line();
          const args = this.#popMark();
          this.#push(this.#call(this.#global(module, name), args));
          break;
        }
        case 0x6f: { // OBJ
          const items = this.#popMark();
          if (items.length === 0) throw this.#error('OBJ without a class');
          this.#push(this.#call(items[0]!, items.slice(1)));
          break;
        }
        case 0x62: { // BUILD
          const state = this.#pop();
          this.#build(this.#top(), state);
          break;
        }
        case 0x50: // PERSID (text)
          this.#push(this.#persistent(this.#line()));
          break;
        case 0x51: // BINPERSID
          this.#push(this.#persistent(this.#pop()));
          break;
        case 0x82:
        case 0x83:
        case 0x84: // EXT1/2/4
          throw this.#error('pickle uses the copyreg extension registry (EXT1/2/4), which is refused');
        default:
          throw this.#error(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }

  // --- stack ---
  #push(v: PickleValue): void {
    if (this.#stack.length + this.#memo.size >= this.#maxItems) throw this.#error(`pickle holds more than ${this.#maxItems} values`);
    this.#stack.push(v);
  }
  #pop(): PickleValue {
    const v = this.#stack.pop();
    if (v === undefined) throw this.#error('pickle stack underflow');
    return v;
  }
  #top(): PickleValue {
    if (this.#stack.length === 0) throw this.#error('pickle stack underflow');
    return this.#stack[this.#stack.length - 1];
  }
  #popMark(): PickleValue[] {
    const items = this.#stack;
    const prev = this.#metastack.pop();
    if (prev === undefined) throw this.#error('pickle pops a MARK that was never pushed');
    this.#stack = prev;
    return items;
  }
  #list(v: PickleValue, op: string): PickleValue[] {
    if (!Array.isArray(v)) throw this.#error(`${op} on ${describeValue(v)}`);
    return v;
  }
  #dict(v: PickleValue, op: string): PickleDict {
    if (!(v instanceof Map)) throw this.#error(`${op} on ${describeValue(v)}`);
    return v;
  }
  #put(i: number): void {
    if (this.#stack.length === 0) throw this.#error('memo PUT with an empty stack');
    if (this.#memo.size + this.#stack.length >= this.#maxItems) throw this.#error(`pickle holds more than ${this.#maxItems} values`);
    this.#memo.set(i, this.#stack[this.#stack.length - 1]);
  }
  #get(i: number): PickleValue {
    const v = this.#memo.get(i);
    if (v === undefined) throw this.#error(`memo GET of unknown key ${i}`);
    return v;
  }

  // --- globals and calls ---
  #global(module: string, name: string): PickleGlobal {
    const mod = MODULE_RENAMES[module] ?? module;
    const handler = this.#globals.get(`${mod}.${name}`);
    if (!handler) throw this.#error(`refusing pickle global ${printable(module)}.${printable(name)} (not on the allow-list)`);
    return new PickleGlobal(mod, name, handler);
  }
  #call(fn: PickleValue, args: PickleValue): PickleValue {
    if (!(fn instanceof PickleGlobal)) throw this.#error(`cannot call ${describeValue(fn)}`);
    if (!fn.handler.call) throw this.#error(`refusing to call pickle global ${fn.fullName}`);
    if (!Array.isArray(args)) throw this.#error(`arguments to ${fn.fullName} are ${describeValue(args)}, not a tuple`);
    try {
      return fn.handler.call(args, fn);
    } catch (err) {
      if (err instanceof WeightsError) throw err;
      throw this.#error(`${fn.fullName}: ${(err as Error).message}`, err);
    }
  }
  #build(obj: PickleValue, state: PickleValue): void {
    if (obj instanceof PickleObject) {
      // (dict_state, slot_state) pairs come from classes with __slots__; fold both into one dict.
      if (Array.isArray(state) && state.length === 2 && (state[0] === null || state[0] instanceof Map) && state[1] instanceof Map) {
        const merged: PickleDict = new Map(state[0] ?? []);
        for (const [k, v] of state[1]) merged.set(k, v);
        state = merged;
      }
      if (obj.state instanceof Map && state instanceof Map) for (const [k, v] of state) obj.state.set(k, v);
      else obj.state = state;
      return;
    }
    // An OrderedDict with instance attributes (state_dict()._metadata) BUILDs them; they are not data.
    if (obj instanceof Map) return;
    throw this.#error(`cannot BUILD ${describeValue(obj)}`);
  }
  #persistent(pid: PickleValue): PickleValue {
    if (!this.#persistentLoad) throw this.#error('pickle has a persistent id and no loader for it was given');
    try {
      return this.#persistentLoad(pid);
    } catch (err) {
      if (err instanceof WeightsError) throw err;
      throw this.#error(`persistent id: ${(err as Error).message}`, err);
    }
  }

  // --- raw reads ---
  #take(n: number): number {
    const at = this.#pos;
    if (n > this.#data.length - at) throw this.#error(`truncated pickle: needs ${n} bytes at byte ${at}`);
    this.#pos += n;
    return at;
  }
  #u8(): number {
    return this.#data[this.#take(1)]!;
  }
  #u64(): number {
    const v = this.#view.getBigUint64(this.#take(8), true);
    if (v > BigInt(this.#data.length)) throw this.#error(`length ${v} is larger than the pickle`);
    return Number(v);
  }
  #bytes(n: number): Uint8Array {
    const at = this.#take(n);
    return this.#data.subarray(at, at + n);
  }
  #utf8(n: number): string {
    const b = this.#bytes(n);
    try {
      return utf8.decode(b);
    } catch (err) {
      throw this.#error('invalid UTF-8 in a string', err);
    }
  }
  #line(): string {
    const d = this.#data;
    const end = d.indexOf(0x0a, this.#pos);
    if (end < 0) throw this.#error('truncated pickle: a text argument has no newline');
    const s = latin1(d.subarray(this.#pos, end));
    this.#pos = end + 1;
    return s;
  }
  #long(n: number): number | bigint {
    if (n > MAX_LONG_BYTES) throw this.#error(`integer of ${n} bytes is too large`);
    const b = this.#bytes(n);
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return Number.isSafeInteger(Number(v)) ? Number(v) : v;
  }
  #parseInt(s: string): number | bigint {
    if (s.length > MAX_LONG_BYTES || !/^[+-]?\d+$/.test(s.trim())) throw this.#error(`bad integer ${JSON.stringify(s)}`);
    const v = BigInt(s.trim());
    return Number.isSafeInteger(Number(v)) ? Number(v) : v;
  }
  #index(s: string): number {
    const v = this.#parseInt(s);
    if (typeof v !== 'number' || v < 0) throw this.#error(`bad memo index ${JSON.stringify(s)}`);
    return v;
  }
  #quoted(s: string): string {
    const q = s[0];
    if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) throw this.#error('STRING argument is not quoted');
    return pythonEscapes(s.slice(1, -1));
  }
  #error(what: string, cause?: unknown): WeightsError {
    return new WeightsError(`${this.#source}: ${what} (opcode at byte ${this.#op})`, cause === undefined ? undefined : { cause });
  }
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

function printable(s: string): string {
  const short = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return short.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

// Python string literal escapes, as protocol 0's STRING writes them (repr of a str).
function pythonEscapes(s: string): string {
  return s.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|[\\'"abfnrtv\n])/g, (_, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8) & 0xff);
    const simple: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\n': '' };
    return simple[e]!;
  });
}

function rawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, u4?: string, u8?: string) => {
    const cp = parseInt((u4 ?? u8)!, 16);
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : '\ufffd';
  });
}
