/** Where JSON input first nests deeper than allowed: the depth reached (capped at the scan's end) and the path of the first levels. */
export interface DepthExcess {
  /** The nesting depth found (at least `maxDepth + 1`). */
  depth: number;
  /** The first keys and indexes on the way down (`extra.a.a…`), for the error message. */
  field: string;
}

const PATH_LEVELS = 4;

/**
 * Scans JSON text for its nesting depth without parsing it (one pass, no recursion), so a 1 MiB payload of
 * `[[[[…` is refused before anything walks it recursively. Returns undefined when the text nests at most
 * `maxDepth` levels; the text need not be valid JSON (JSON.parse judges that afterwards).
 */
export function jsonTextDepthExcess(text: string, maxDepth: number): DepthExcess | undefined {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > deepest) deepest = depth;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  if (deepest <= maxDepth) return undefined;
  // Rare path: parse (V8's JSON.parse does not recurse on the stack) to name where the nesting goes.
  let field = '(root)';
  try {
    field = jsonValueDepthExcess(JSON.parse(text) as unknown, maxDepth)?.field ?? field;
  } catch {
    // not JSON: the caller's parse reports that
  }
  return { depth: deepest, field };
}

/**
 * The nesting depth of an already-parsed value, walked with an explicit stack and stopping at the first
 * branch past `maxDepth`. Returns undefined when within the limit.
 */
export function jsonValueDepthExcess(value: unknown, maxDepth: number): DepthExcess | undefined {
  interface Node { v: unknown; depth: number; key: string; parent: Node | undefined }
  const stack: Node[] = [{ v: value, depth: 0, key: '', parent: undefined }];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (node.v === null || typeof node.v !== 'object') continue;
    if (node.depth + 1 > maxDepth) return { depth: node.depth + 1, field: pathOf(node) };
    const isArray = Array.isArray(node.v);
    for (const [k, child] of Object.entries(node.v)) {
      if (child !== null && typeof child === 'object') stack.push({ v: child, depth: node.depth + 1, key: isArray ? `[${k}]` : k, parent: node });
    }
  }
  return undefined;

  function pathOf(node: Node): string {
    const keys: string[] = [];
    for (let n: Node | undefined = node; n?.parent !== undefined; n = n.parent) keys.push(n.key);
    keys.reverse();
    const shown = keys.slice(0, PATH_LEVELS).join('.').replace(/\.\[/g, '[');
    return shown === '' ? '(root)' : keys.length > PATH_LEVELS ? `${shown}…` : shown;
  }
}
