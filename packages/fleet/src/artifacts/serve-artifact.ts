import { open, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { PackageRegistry } from '../registry/package-registry.js';
import { ARTIFACTS_PREFIX, parseArtifactPath } from './artifact-path.js';
import { parseByteRange } from './byte-range.js';

/** Whether an `If-None-Match` / `If-Range` value names this strong ETag. */
function matchesEtag(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim() === etag);
}

/**
 * Answer `GET` / `HEAD /artifacts/<name>/<version>.tar` from the registry: the stored `.tar` with a
 * strong ETag (its SHA-256, quoted), `Accept-Ranges: bytes`, one `Range` (`bytes=a-b`, `a-`, `-n`;
 * 206 with `Content-Range`, or 416 with `Content-Range: bytes *\/size`), `If-Range` and `If-None-Match`.
 * Versions never change, so responses are cacheable forever. Resolves `false`, sending nothing, for a
 * path outside `/artifacts/` (the caller routes it elsewhere), and `true` otherwise (404 for an unknown
 * package, 405 for other methods).
 * @example
 * createServer((req, res) => void serveArtifact(req, res, registry).then((done) => done || res.writeHead(404).end()));
 */
export async function serveArtifact(req: IncomingMessage, res: ServerResponse, registry: PackageRegistry): Promise<boolean> {
  const pathname = (req.url ?? '/').split('?')[0]!;
  if (!pathname.startsWith(ARTIFACTS_PREFIX)) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
    return true;
  }
  const where = parseArtifactPath(pathname);
  const record = where === undefined ? undefined : registry.get(where.name, where.version);
  if (record === undefined) {
    const body = 'no such package\n';
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }

  const etag = `"${record.sha256}"`;
  const common = {
    etag,
    'accept-ranges': 'bytes',
    'cache-control': 'public, max-age=31536000, immutable',
    'last-modified': new Date(record.pushedAt).toUTCString(),
  };
  const inm = req.headers['if-none-match'];
  if (inm !== undefined && matchesEtag(inm, etag)) {
    res.writeHead(304, common).end();
    return true;
  }
  // If-Range with another validator means the client's partial copy is stale: send the whole file.
  const ifRange = req.headers['if-range'];
  const rangeHeader = ifRange === undefined || String(ifRange).trim() === etag ? req.headers.range : undefined;
  const range = parseByteRange(rangeHeader, record.size);
  if (range === 'unsatisfiable') {
    res.writeHead(416, { ...common, 'content-range': `bytes */${record.size}`, 'content-length': 0 }).end();
    return true;
  }
  // Open before any header goes out, so a tar missing from disk is a clear 500 rather than a cut 200.
  let fh: FileHandle;
  try {
    fh = await open(record.path, 'r');
  } catch (err) {
    const body = `package ${record.name}@${record.version} is in the registry but its file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})\n`;
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? record.size - 1;
  const length = record.size === 0 ? 0 : end - start + 1;
  res.writeHead(range === undefined ? 200 : 206, {
    ...common,
    'content-type': 'application/x-tar',
    'content-length': length,
    ...(range === undefined ? {} : { 'content-range': `bytes ${start}-${end}/${record.size}` }),
  });
  if (req.method === 'HEAD' || length === 0) {
    await fh.close();
    res.end();
    return true;
  }
  try {
    await pipeline(fh.createReadStream({ start, end, autoClose: true }), res);
  } catch {
    // The client went away, or the file could not be read after the headers went out: the connection is cut,
    // so the client sees a short body and resumes with a Range.
    res.destroy();
  }
  return true;
}
