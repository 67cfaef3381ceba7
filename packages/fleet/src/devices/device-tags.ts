/** A tag: 1–64 characters of letters, digits and `._:=-`, starting with a letter or digit. */
export const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}$/;

/** Most tags one device may carry. */
export const MAX_TAGS = 64;

/** Check and normalise a tag list (deduplicated, sorted); RangeError naming the bad tag. */
export function normaliseTags(tags: readonly string[], name = 'tags'): string[] {
  if (!Array.isArray(tags)) throw new TypeError(`${name} must be an array of strings`);
  tags.forEach((t, i) => {
    if (typeof t !== 'string' || !TAG_RE.test(t)) throw new RangeError(`${name}[${i}] must match ${TAG_RE}, got ${JSON.stringify(t)}`);
  });
  const out = [...new Set(tags)].sort();
  if (out.length > MAX_TAGS) throw new RangeError(`${name} holds ${out.length} tags; at most ${MAX_TAGS} are allowed`);
  return out;
}
