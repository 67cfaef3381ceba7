/** URL path prefix under which {@link serveArtifact} answers. */
export const ARTIFACTS_PREFIX = '/artifacts/';

/**
 * The URL path of a package `.tar` on kd-fleet's HTTP server, as put into a deploy command's `http.url`
 * (each part percent-encoded, so build metadata's `+` survives).
 * @example
 * artifactPath('yolov5n-pets', '1.2.0+b5'); // '/artifacts/yolov5n-pets/1.2.0%2Bb5.tar'
 */
export function artifactPath(name: string, version: string): string {
  if (typeof name !== 'string' || name === '') throw new TypeError('name must be a model name');
  if (typeof version !== 'string' || version === '') throw new TypeError('version must be a version');
  return `${ARTIFACTS_PREFIX}${encodeURIComponent(name)}/${encodeURIComponent(version)}.tar`;
}

/** The name and version in an artifact URL path, or undefined when the path is not `/artifacts/<name>/<version>.tar`. */
export function parseArtifactPath(pathname: string): { name: string; version: string } | undefined {
  if (!pathname.startsWith(ARTIFACTS_PREFIX)) return undefined;
  const parts = pathname.slice(ARTIFACTS_PREFIX.length).split('/');
  if (parts.length !== 2 || !parts[1]!.endsWith('.tar')) return undefined;
  try {
    const name = decodeURIComponent(parts[0]!);
    const version = decodeURIComponent(parts[1]!.slice(0, -'.tar'.length));
    if (name === '' || version === '') return undefined;
    return { name, version };
  } catch {
    return undefined; // a malformed escape
  }
}
