/** Why a path is not allowed inside a package: `escape` when it could reach outside the package root. */
export interface PathProblem {
  escape: boolean;
  reason: string;
}

/** Longest package path accepted, in UTF-16 units (ustar itself stops at 255 bytes). */
export const MAX_PACKAGE_PATH_LENGTH = 1024;

/**
 * What is wrong with `path` as a package path, or undefined when it is a clean relative POSIX path:
 * no leading `/`, drive letter or backslash, no `..`, `.` or empty segment, no control characters.
 */
export function packagePathProblem(path: string): PathProblem | undefined {
  if (typeof path !== 'string' || path.length === 0) return { escape: false, reason: 'it is empty' };
  if (path.startsWith('/')) return { escape: true, reason: 'it is absolute' };
  if (/^[A-Za-z]:/.test(path)) return { escape: true, reason: 'it starts with a drive letter' };
  // A backslash is an ordinary byte on POSIX but a separator on Windows, where `..\x` would climb out.
  if (path.includes('\\')) return { escape: true, reason: 'it contains a backslash' };
  if (path.split('/').includes('..')) return { escape: true, reason: 'it has a ".." segment' };
  if (path.length > MAX_PACKAGE_PATH_LENGTH) return { escape: false, reason: `it is longer than ${MAX_PACKAGE_PATH_LENGTH} characters` };
  if (/[\u0000-\u001f\u007f]/.test(path)) return { escape: false, reason: 'it contains a control character' };
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(path)) {
    return { escape: false, reason: 'it contains a lone UTF-16 surrogate' };
  }
  for (const seg of path.split('/')) {
    if (seg === '') return { escape: false, reason: 'it has an empty segment (a doubled or trailing "/")' };
    if (seg === '.') return { escape: false, reason: 'it has a "." segment' };
  }
  return undefined;
}

/**
 * A path as a tar writer may spell it, made canonical: leading `./` and inner `.` or empty segments
 * dropped, a trailing `/` removed. Returns '' for the archive root (`./`). Escapes are left for
 * {@link packagePathProblem} to find.
 */
export function normalizeArchivePath(path: string): string {
  if (path.startsWith('/')) return path;
  return path
    .split('/')
    .filter((seg) => seg !== '' && seg !== '.')
    .join('/');
}
