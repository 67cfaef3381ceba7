/**
 * The canonical JSON text of `value` in the manner of RFC 8785 (JCS): object keys sorted by
 * UTF-16 code units, no whitespace, numbers in ECMAScript's shortest form, strings escaped as
 * `JSON.stringify` does. Only plain data is accepted: a non-finite number, `undefined`, a function,
 * a symbol, a bigint, a lone surrogate, a cycle or a non-plain object (Date, Map, class instance)
 * throws a TypeError or RangeError naming where it sits (e.g. `$.input.shape[2]`).
 * @example
 * canonicalJson({ b: [1e21, -0], a: 'é' }); // '{"a":"é","b":[1e+21,0]}'
 */
export function canonicalJson(value: unknown): string {
  return write(value, '$', new Set());
}

/** The UTF-8 bytes of {@link canonicalJson}, which is what gets signed. */
export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

// RFC 8785 §3.2.2.2 serialises strings with JSON.stringify, but its input must be I-JSON (RFC 7493
// §2.1), which forbids lone surrogates; JSON.stringify would silently escape them.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function writeString(s: string, where: string): string {
  if (LONE_SURROGATE.test(s)) throw new TypeError(`${where} holds a lone UTF-16 surrogate, which I-JSON forbids`);
  return JSON.stringify(s);
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function write(value: unknown, where: string, stack: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return writeString(value, where);
    case 'number':
      if (!Number.isFinite(value)) throw new RangeError(`${where} is ${value}, which JSON cannot hold`);
      // ECMAScript Number::toString is the shortest round-trip form RFC 8785 §3.2.2.3 asks for; -0 → "0".
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      throw new TypeError(`${where} is a ${typeof value}, which JSON cannot hold`);
  }
  if (value === null) return 'null';
  if (stack.has(value)) throw new TypeError(`${where} refers back to an enclosing value (a cycle)`);
  stack.add(value);
  let out: string;
  if (Array.isArray(value)) {
    const parts: string[] = [];
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw new TypeError(`${where}[${i}] is a hole in a sparse array`);
      parts.push(write(value[i], `${where}[${i}]`, stack));
    }
    out = `[${parts.join(',')}]`;
  } else {
    if (!isPlainObject(value)) {
      const kind = (value as { constructor?: { name?: string } }).constructor?.name ?? 'exotic';
      throw new TypeError(`${where} is a ${kind} object; only plain objects and arrays are allowed`);
    }
    if (Object.getOwnPropertySymbols(value).length > 0) throw new TypeError(`${where} has symbol keys`);
    // Array.prototype.sort without a comparator orders strings by UTF-16 code units, as RFC 8785 §3.2.3 asks.
    const keys = Object.keys(value).sort();
    const parts: string[] = [];
    for (const key of keys) {
      const child = `${where}.${key}`;
      parts.push(`${writeString(key, `key ${JSON.stringify(child)}`)}:${write((value as Record<string, unknown>)[key], child, stack)}`);
    }
    out = `{${parts.join(',')}}`;
  }
  stack.delete(value);
  return out;
}
