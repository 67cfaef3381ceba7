/** A version split into its semver 2.0.0 parts; numbers stay strings so any length compares exactly. */
export interface Semver {
  major: string;
  minor: string;
  patch: string;
  /** Dot-separated pre-release identifiers (`1.0.0-rc.1` → `['rc', '1']`); empty for a release. */
  prerelease: string[];
  /** Build metadata identifiers; they never affect precedence. */
  build: string[];
}

// semver.org §2, §9, §10: no leading zeros in numbers or numeric pre-release identifiers.
const NUM = '0|[1-9]\\d*';
const PRE_ID = `(?:${NUM}|\\d*[A-Za-z-][0-9A-Za-z-]*)`;
const SEMVER_RE = new RegExp(
  `^(${NUM})\\.(${NUM})\\.(${NUM})` +
    `(?:-(${PRE_ID}(?:\\.${PRE_ID})*))?` +
    `(?:\\+([0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*))?$`,
);

/** Parse a semver 2.0.0 version, or return undefined when `text` is not one. */
export function parseSemver(text: string): Semver | undefined {
  if (typeof text !== 'string') return undefined;
  const m = SEMVER_RE.exec(text);
  if (m === null) return undefined;
  return {
    major: m[1],
    minor: m[2],
    patch: m[3],
    prerelease: m[4] === undefined ? [] : m[4].split('.'),
    build: m[5] === undefined ? [] : m[5].split('.'),
  };
}

/** Whether `text` is a valid semver 2.0.0 version (pre-release and build metadata included). */
export function isSemver(text: string): boolean {
  return parseSemver(text) !== undefined;
}

/** Compare two digit strings without leading zeros as unbounded integers. */
function compareDigits(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

const isNumeric = (id: string): boolean => /^\d+$/.test(id);

// semver.org §11.4: numeric < alphanumeric; numbers numerically; text in ASCII order; shorter list first on a tie.
function comparePrerelease(a: string[], b: string[]): number {
  if (a.length === 0 || b.length === 0) return a.length === b.length ? 0 : a.length === 0 ? 1 : -1;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    const xn = isNumeric(x);
    const yn = isNumeric(y);
    let c: number;
    if (xn && yn) c = compareDigits(x, y);
    else if (xn !== yn) c = xn ? -1 : 1;
    else c = x < y ? -1 : x > y ? 1 : 0;
    if (c !== 0) return c;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/**
 * Semver 2.0.0 precedence of `a` against `b`: -1, 0 or 1. Build metadata is ignored, so
 * `1.0.0+a` and `1.0.0+b` compare equal. Throws a RangeError naming the argument that is not a version.
 * @example
 * compareSemver('1.0.0-rc.1', '1.0.0'); // -1
 */
export function compareSemver(a: string, b: string): -1 | 0 | 1 {
  const x = parseSemver(a);
  if (x === undefined) throw new RangeError(`a must be a semver 2.0.0 version, got ${JSON.stringify(a)}`);
  const y = parseSemver(b);
  if (y === undefined) throw new RangeError(`b must be a semver 2.0.0 version, got ${JSON.stringify(b)}`);
  const c =
    compareDigits(x.major, y.major) ||
    compareDigits(x.minor, y.minor) ||
    compareDigits(x.patch, y.patch) ||
    comparePrerelease(x.prerelease, y.prerelease);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}
