/** Python's repr() of a str: single quotes unless the text has ' and no ", with Python's escapes. */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === quote || ch === '\\') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + quote;
}

/** `{0: 'person', 1: 'car'}`: how ultralytics' export writes `names` into ONNX metadata (str of a dict). */
export function pyNamesDict(names: readonly string[]): string {
  return '{' + names.map((n, i) => `${i}: ${pyStrRepr(n)}`).join(', ') + '}';
}

/** Parses the `names` metadata back: a Python dict literal `{0: 'a', ...}` or list `['a', ...]`. */
export function parsePyNames(text: string): string[] | undefined {
  const t = text.trim();
  const items: [number, string][] = [];
  const isDict = t.startsWith('{') && t.endsWith('}');
  if (!isDict && !(t.startsWith('[') && t.endsWith(']'))) return undefined;
  const re = isDict ? /(\d+)\s*:\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")/gy : /\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*,?/gy;
  const body = t.slice(1, -1);
  let pos = 0;
  let idx = 0;
  while (pos < body.length) {
    while (pos < body.length && /[\s,]/.test(body[pos]!)) pos++;
    if (pos >= body.length) break;
    re.lastIndex = pos;
    const m = re.exec(body);
    if (m === null) return undefined;
    const lit = isDict ? m[2]! : m[1]!;
    const value = lit.slice(1, -1).replace(/\\x([0-9a-f]{2})|\\(.)/gi, (_, hex: string | undefined, c: string | undefined) =>
      hex !== undefined ? String.fromCharCode(parseInt(hex, 16)) : c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : c!,
    );
    items.push([isDict ? Number(m[1]) : idx++, value]);
    pos = re.lastIndex;
  }
  items.sort((a, b) => a[0] - b[0]);
  return items.map(([, v]) => v);
}
