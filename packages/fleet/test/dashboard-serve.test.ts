import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveDashboard } from '../src/dashboard/serve-dashboard.js';

const PUBLIC = fileURLToPath(new URL('../src/dashboard/public/', import.meta.url));

let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    void serveDashboard(req, res).then((answered) => {
      if (!answered) res.writeHead(418).end('not the dashboard');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A raw request, so paths reach the server exactly as written (fetch would normalise `..`). */
function raw(method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/`, { method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('serveDashboard', () => {
  it('serves the page at / with HTML type, revalidation and a same-origin CSP', async () => {
    const r = await raw('GET', '/');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.headers['content-security-policy']).toContain("default-src 'self'");
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.body).toContain('<script type="module" src="/assets/app.js">');
    expect(r.body).toBe(await readFile(join(PUBLIC, 'index.html'), 'utf8'));
    expect((await raw('GET', '/index.html?x=1')).body).toBe(r.body);
  });

  it('serves each asset with its content type', async () => {
    const js = await raw('GET', '/assets/app.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.body).toBe(await readFile(join(PUBLIC, 'app.js'), 'utf8'));
    const css = await raw('GET', '/assets/style.css');
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(Number(css.headers['content-length'])).toBe(Buffer.byteLength(css.body));
  });

  it('answers HEAD without a body and If-None-Match with 304', async () => {
    const head = await raw('HEAD', '/assets/app.js');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(Number(head.headers['content-length'])).toBeGreaterThan(0);
    const etag = head.headers.etag as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await raw('GET', '/assets/app.js', { 'If-None-Match': etag });
    expect(again.status).toBe(304);
    expect(again.body).toBe('');
    expect((await raw('GET', '/assets/app.js', { 'If-None-Match': '"other"' })).status).toBe(200);
  });

  it('never leaves the asset folder, whatever the encoding', async () => {
    for (const path of [
      '/assets/../serve-dashboard.ts', '/assets/..%2Fserve-dashboard.ts', '/assets/%2e%2e%2fserve-dashboard.ts', '/assets/..%5Cserve-dashboard.ts',
      '/assets/sub/app.js', '/assets/.hidden.js', '/assets/%', '/assets/', '/assets/app.ts', '/assets/nope.js',
    ]) {
      const r = await raw('GET', path);
      // `/assets/../x` is normalised by URL parsing to `/x`: not the dashboard's, so the next handler gets it.
      expect([404, 418], path).toContain(r.status);
      expect(r.body, path).not.toContain('serveDashboard');
    }
    expect((await raw('GET', '/assets/..%2Fserve-dashboard.ts')).status).toBe(404);
  });

  it('leaves other paths to the next handler and refuses other methods on its own', async () => {
    expect((await raw('GET', '/api/info')).status).toBe(418);
    expect((await raw('GET', '/artifacts/x')).status).toBe(418);
    const post = await raw('POST', '/');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });

  it('ships every module the page imports, and nothing from outside the machine', async () => {
    const files = await readdir(PUBLIC);
    const html = await readFile(join(PUBLIC, 'index.html'), 'utf8');
    for (const m of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
      expect(m[1], 'a local asset').toMatch(/^\/assets\/[\w.-]+$/);
      expect(files).toContain(m[1]!.slice('/assets/'.length));
    }
    for (const f of files.filter((n) => n.endsWith('.js'))) {
      const text = await readFile(join(PUBLIC, f), 'utf8');
      for (const m of text.matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)) {
        expect(m[1], `${f} imports ${m[1]}`).toMatch(/^\.\/[\w.-]+\.js$/);
        expect(files, `${f} imports ${m[1]}`).toContain(m[1]!.slice(2));
        const r = await raw('GET', `/assets/${m[1]!.slice(2)}`);
        expect(r.status).toBe(200);
      }
      // the SVG namespace is a name, not a fetch
      expect(text, f).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    }
  });
});
