import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Options of {@link serveDashboard}. */
export interface ServeDashboardOptions {
  /** Folder holding index.html and the assets (default: the dashboard shipped with kd-fleet). */
  root?: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

// One flat folder of assets: a name is letters, digits, dots, dashes and underscores, never starting with a dot,
// so neither `..` nor a slash nor an encoded one (%2F is decoded before this check) can leave it.
const ASSET_NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

// The page talks only to its own origin (REST, server-sent events, MQTT over WebSocket on another port).
const CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self' ws: wss:",
  "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'none'",
].join('; ');

/** The dashboard folder: next to this module in the source tree (`public/`), or `dashboard/` next to the bundle. */
function defaultRoot(): string {
  const candidates = [fileURLToPath(new URL('./public/', import.meta.url)), fileURLToPath(new URL('./dashboard/', import.meta.url))];
  return candidates.find((dir) => existsSync(join(dir, 'index.html'))) ?? candidates[0]!;
}

let cachedRoot: string | undefined;

interface Asset {
  body: Buffer;
  etag: string;
  type: string;
}

/** Resolves the request path to an asset file name, or undefined when the path is not the dashboard's. */
function assetName(pathname: string): string | undefined {
  if (pathname === '/' || pathname === '/index.html') return 'index.html';
  if (!pathname.startsWith('/assets/')) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(pathname.slice('/assets/'.length));
  } catch {
    return '';
  }
  return ASSET_NAME_RE.test(name) ? name : '';
}

async function load(root: string, name: string): Promise<Asset | undefined> {
  const dot = name.lastIndexOf('.');
  const type = dot > 0 ? CONTENT_TYPES[name.slice(dot).toLowerCase()] : undefined;
  if (type === undefined) return undefined;
  let body: Buffer;
  try {
    body = await readFile(join(root, name));
  } catch {
    return undefined;
  }
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, etag, type };
}

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  res.end(`${text}\n`);
}

/**
 * Serves the dashboard: GET/HEAD of `/` (the page) and `/assets/<file>` (its scripts and styles) with their
 * content types, an ETag answered with 304, `Cache-Control: no-cache` (names carry no hash, so the browser
 * revalidates) and a same-origin Content-Security-Policy. Returns false for any other path, so the caller
 * can try its next handler; true once it has answered (404 for an unknown asset, 405 for another method).
 * @example
 * http.createServer(async (req, res) => { if (!(await serveDashboard(req, res))) { res.writeHead(404).end(); } });
 */
export async function serveDashboard(req: IncomingMessage, res: ServerResponse, options: ServeDashboardOptions = {}): Promise<boolean> {
  let pathname: string;
  try {
    pathname = new URL(req.url ?? '/', 'http://dashboard.invalid').pathname;
  } catch {
    return false;
  }
  const name = assetName(pathname);
  if (name === undefined) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    plain(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
    return true;
  }
  const root = options.root ?? (cachedRoot ??= defaultRoot());
  const asset = name === '' ? undefined : await load(root, name);
  if (asset === undefined) {
    plain(res, 404, 'not found');
    return true;
  }
  const headers: Record<string, string | number> = {
    'Content-Type': asset.type,
    'Cache-Control': 'no-cache',
    ETag: asset.etag,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  };
  if (asset.type.startsWith('text/html')) {
    headers['Content-Security-Policy'] = CSP;
    headers['X-Frame-Options'] = 'DENY';
  }
  const inm = req.headers['if-none-match'];
  if (inm !== undefined && inm.split(',').some((tag) => tag.trim().replace(/^W\//, '') === asset.etag || tag.trim() === '*')) {
    res.writeHead(304, { ETag: asset.etag, 'Cache-Control': 'no-cache' });
    res.end();
    return true;
  }
  headers['Content-Length'] = asset.body.length;
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : asset.body);
  return true;
}
