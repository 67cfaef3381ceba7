import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactPath, parseArtifactPath } from '../src/artifacts/artifact-path.js';
import { parseByteRange } from '../src/artifacts/byte-range.js';
import { serveArtifact } from '../src/artifacts/serve-artifact.js';
import type { PackageRecord } from '../src/registry/package-record.js';
import { PackageRegistry } from '../src/registry/package-registry.js';
import { makeTestPackage, migratedDb, tempDir, testKeys } from './registry-helpers.js';

let cleanup: () => Promise<void>;
let db: Database.Database;
let server: Server;
let base: string;
let pkg: PackageRecord;
let tar: Buffer;
let registry: PackageRegistry;
let srcDir: string;

beforeAll(async () => {
  const t = await tempDir('kd-fleet-artifacts-');
  cleanup = t.cleanup;
  db = migratedDb(t.dir);
  const { trusted } = testKeys();
  registry = new PackageRegistry(db, { dataDir: join(t.dir, 'data') });
  srcDir = join(t.dir, 'src');
  const built = await makeTestPackage(join(t.dir, 'src'), 'pets', '1.2.0+b.5', trusted.privateKeyPem, 40 * 1024);
  pkg = await registry.push(built.tar, { trustedKeys: [trusted.publicKeyPem] });
  tar = await readFile(pkg.path);
  server = createServer((req, res) => {
    void serveArtifact(req, res, registry).then((handled) => {
      if (!handled) res.writeHead(418).end('not mine');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  db.close();
  await cleanup();
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A plain HTTP request (no client that might rewrite ranges or conditionals). */
function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('serveArtifact', () => {
  it('serves the whole tar with a strong ETag of its SHA-256', async () => {
    const r = await get(artifactPath('pets', '1.2.0+b.5'));
    expect(r.status).toBe(200);
    expect(sha(r.body)).toBe(pkg.sha256);
    expect(r.headers).toMatchObject({
      etag: `"${pkg.sha256}"`, 'accept-ranges': 'bytes', 'content-length': String(pkg.size), 'content-type': 'application/x-tar',
    });
    expect(r.headers['content-range']).toBeUndefined();
  });

  it('answers HEAD with the headers and no body', async () => {
    const r = await get(artifactPath('pets', '1.2.0+b.5'), {}, 'HEAD');
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe(String(pkg.size));
    expect(r.headers.etag).toBe(`"${pkg.sha256}"`);
    expect(r.body.length).toBe(0);
  });

  it.each([
    ['bytes=0-99', 0, 99],
    ['bytes=100-', 100, -1],
    ['bytes=-50', -50, -1],
    ['bytes=10-999999999', 10, -1], // the end is clamped to the last byte
    ['bytes=-999999999', 0, -1], // a suffix longer than the file is the whole file
    ['bytes=LAST-LAST', -1, -1], // the last byte alone
  ])('serves %s as 206 with Content-Range', async (spec, from, to) => {
    const size = pkg.size;
    const start = from < 0 ? size + from : from;
    const end = to < 0 ? size + to : to;
    const header = spec.replaceAll('LAST', String(size - 1));
    const r = await get(artifactPath('pets', '1.2.0+b.5'), { range: header });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${size}`);
    expect(r.headers['content-length']).toBe(String(end - start + 1));
    expect(r.body.equals(tar.subarray(start, end + 1))).toBe(true);
  });

  it.each(['bytes=-0', 'bytes=SIZE-', 'bytes=SIZE-SIZE'])('answers unsatisfiable %s with 416 and Content-Range bytes */size', async (spec) => {
    const r = await get(artifactPath('pets', '1.2.0+b.5'), { range: spec.replaceAll('SIZE', String(pkg.size)) });
    expect(r.status).toBe(416);
    expect(r.headers['content-range']).toBe(`bytes */${pkg.size}`);
    expect(r.body.length).toBe(0);
  });

  it.each(['bytes=5-2', 'bytes=abc', 'bytes=0-1,5-6', 'items=0-9', 'bytes=-'])('ignores the invalid or multi-range header %s and sends 200', async (spec) => {
    const r = await get(artifactPath('pets', '1.2.0+b.5'), { range: spec });
    expect(r.status).toBe(200);
    expect(sha(r.body)).toBe(pkg.sha256);
  });

  it('resumes: two ranges put together are the package', async () => {
    const half = Math.floor(pkg.size / 2);
    const a = await get(artifactPath('pets', '1.2.0+b.5'), { range: `bytes=0-${half - 1}` });
    const b = await get(artifactPath('pets', '1.2.0+b.5'), { range: `bytes=${half}-`, 'if-range': `"${pkg.sha256}"` });
    expect(b.status).toBe(206);
    expect(sha(Buffer.concat([a.body, b.body]))).toBe(pkg.sha256);
  });

  it('sends the whole tar when If-Range names another version, and 304 for a matching If-None-Match', async () => {
    const stale = await get(artifactPath('pets', '1.2.0+b.5'), { range: 'bytes=100-', 'if-range': `"${'0'.repeat(64)}"` });
    expect(stale.status).toBe(200);
    expect(stale.body.length).toBe(pkg.size);
    const cached = await get(artifactPath('pets', '1.2.0+b.5'), { 'if-none-match': `"${pkg.sha256}"` });
    expect(cached.status).toBe(304);
    expect(cached.body.length).toBe(0);
  });

  it('answers 404 for unknown packages and malformed artifact paths, 405 for other methods, and leaves other paths alone', async () => {
    expect((await get(artifactPath('pets', '9.9.9'))).status).toBe(404);
    expect((await get('/artifacts/pets/1.2.0+b.5')).status).toBe(404);
    expect((await get('/artifacts/pets/%E0%A4%A.tar')).status).toBe(404);
    expect((await get('/artifacts/a/b/c.tar')).status).toBe(404);
    const post = await get(artifactPath('pets', '1.2.0+b.5'), {}, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    const other = await get('/api/devices');
    expect(other.status).toBe(418);
  });
});

describe('serveArtifact with a lost file', () => {
  it('answers 500, not a cut 200, when a registered tar is missing from disk', async () => {
    const { trusted } = testKeys();
    const built = await makeTestPackage(srcDir, 'pets', '3.0.0', trusted.privateKeyPem, 4096);
    const lost = await registry.push(built.tar, { trustedKeys: [trusted.publicKeyPem] });
    await rm(lost.path);
    const r = await get(artifactPath('pets', '3.0.0'));
    expect(r.status).toBe(500);
    expect(r.body.toString()).toContain('cannot be read');
  });
});

describe('artifact paths and ranges', () => {
  it('round-trips name and version through the URL path', () => {
    expect(artifactPath('pets', '1.2.0+b.5')).toBe('/artifacts/pets/1.2.0%2Bb.5.tar');
    expect(parseArtifactPath('/artifacts/pets/1.2.0%2Bb.5.tar')).toEqual({ name: 'pets', version: '1.2.0+b.5' });
    expect(parseArtifactPath('/artifacts/pets/.tar')).toBeUndefined();
    expect(parseArtifactPath('/other/pets/1.0.0.tar')).toBeUndefined();
  });

  it('parses ranges against a size', () => {
    expect(parseByteRange(undefined, 10)).toBeUndefined();
    expect(parseByteRange('bytes=2-4', 10)).toEqual({ start: 2, end: 4 });
    expect(parseByteRange('Bytes = 2-', 10)).toEqual({ start: 2, end: 9 });
    expect(parseByteRange('bytes=-3', 10)).toEqual({ start: 7, end: 9 });
    expect(parseByteRange('bytes=0-0', 0)).toBe('unsatisfiable');
    expect(parseByteRange('bytes=10-', 10)).toBe('unsatisfiable');
    expect(() => parseByteRange('bytes=0-1', -1)).toThrow(RangeError);
  });
});
