import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { uploadPackage } from '../src/adapt/adapt-upload.js';
import { TransferError } from '../src/transfer/transfer-error.js';
import { makePki } from './tls-pki.js';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

type Answer = (r: Received, res: ServerResponse, n: number) => void;

let dir: string;
let tar: string;
let bytes: Buffer;
const servers: (http.Server | https.Server)[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-upload-'));
  tar = join(dir, 'package.tar');
  bytes = randomBytes(200_000);
  await writeFile(tar, bytes);
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A real server recording every request whole, answering with `answer` (n: the request's index). */
async function serve(answer: Answer, make: (h: http.RequestListener) => http.Server | https.Server = (h) => http.createServer(h)): Promise<{ url: string; got: Received[] }> {
  const got: Received[] = [];
  const server = make((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      got.push(r);
      answer(r, res, got.length - 1);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const scheme = server instanceof https.Server ? 'https' : 'http';
  return { url: `${scheme}://${scheme === 'https' ? 'localhost' : '127.0.0.1'}:${(server.address() as AddressInfo).port}/api/uploads/secret-token-123`, got };
}

const json = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};
const fast = { retryDelayMs: 1, retryMaxDelayMs: 2, random: () => 0 };
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function refusal(p: Promise<unknown>): Promise<TransferError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TransferError);
  return err as TransferError;
}

describe('uploadPackage', () => {
  it('PUTs the file whole with its length, type and SHA-256, and returns the server answer', async () => {
    const { url, got } = await serve((_r, res) => json(res, 201, { name: 'shapes', version: '1.0.0+adapt.cam-01.1', sha256: 'x' }));
    const result = await uploadPackage(tar, url, fast);
    expect(got).toHaveLength(1);
    const r = got[0]!;
    expect(r.method).toBe('PUT');
    expect(r.url).toBe('/api/uploads/secret-token-123');
    expect(r.headers['content-type']).toBe('application/x-tar');
    expect(r.headers['content-length']).toBe(String(bytes.length));
    expect(r.headers['x-kd-sha256']).toBe(sha(bytes));
    expect(r.body.equals(bytes)).toBe(true);
    expect(result).toMatchObject({ sha256: sha(bytes), size: bytes.length, status: 201, attempts: 1, body: { version: '1.0.0+adapt.cam-01.1' } });
  });

  it('retries 5xx answers and a dropped connection, then succeeds', async () => {
    const { url, got } = await serve((_r, res, n) => {
      if (n === 0) return json(res, 503, { error: { code: 'BUSY', message: 'later' } });
      if (n === 1) return res.socket?.destroy();
      return json(res, 201, {});
    });
    const result = await uploadPackage(tar, url, { ...fast, retries: 3 });
    expect(result.attempts).toBe(3);
    expect(got).toHaveLength(3);
    expect(got.every((r) => r.body.equals(bytes))).toBe(true);
  });

  it('never retries a 4xx, and names the status and the server message without the token', async () => {
    const { url, got } = await serve((_r, res) => json(res, 409, { error: { code: 'FLEET_UPLOAD_USED', message: 'this upload URL was used already' } }));
    const err = await refusal(uploadPackage(tar, url, { ...fast, retries: 3 }));
    expect(err.code).toBe('TRANSFER_HTTP_STATUS');
    expect(err.status).toBe(409);
    expect(err.message).toMatch(/HTTP 409: FLEET_UPLOAD_USED: this upload URL was used already/);
    expect(err.message).not.toContain('secret-token-123');
    expect(got).toHaveLength(1);
  });

  it('gives up after its retries with the last failure', async () => {
    const { url, got } = await serve((_r, res) => json(res, 500, { error: { code: 'FLEET_INTERNAL', message: 'internal' } }));
    const err = await refusal(uploadPackage(tar, url, { ...fast, retries: 2 }));
    expect(err.code).toBe('TRANSFER_HTTP_STATUS');
    expect(err.status).toBe(500);
    expect(got).toHaveLength(3);
  });

  it('fails with TRANSFER_NETWORK when nothing listens', async () => {
    const { url } = await serve(() => undefined);
    const s = servers.pop()!;
    await new Promise((r) => s.close(r));
    const err = await refusal(uploadPackage(tar, url, { ...fast, retries: 1 }));
    expect(err.code).toBe('TRANSFER_NETWORK');
    expect(err.message).not.toContain('secret-token-123');
  });

  it('stops with TRANSFER_ABORTED when aborted', async () => {
    const { url } = await serve((_r, res) => json(res, 503, {}));
    const ac = new AbortController();
    const p = uploadPackage(tar, url, { retries: 5, retryDelayMs: 60_000, retryMaxDelayMs: 60_000, random: () => 0, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    expect((await refusal(p)).code).toBe('TRANSFER_ABORTED');
  });

  it('refuses bad arguments', async () => {
    await expect(uploadPackage(tar, 'ftp://host/x')).rejects.toThrow(/url must be an http:\/\/ or https:\/\/ URL/);
    await expect(uploadPackage(tar, 'http://127.0.0.1:1/x', { retries: -1 })).rejects.toThrow(/options\.retries must be an integer >= 0/);
  });

  describe('https', () => {
    let pki: { dir: string; caFile: string; cert: Buffer; key: Buffer };
    beforeAll(async () => {
      const d = await mkdtemp(join(tmpdir(), 'kd-upload-pki-'));
      await makePki(d);
      pki = { dir: d, caFile: join(d, 'ca.crt'), cert: await readFile(join(d, 'server.crt')), key: await readFile(join(d, 'server.key')) };
    });
    afterAll(() => rm(pki.dir, { recursive: true, force: true }));

    it('uploads over https trusting the given CA, and refuses an unknown certificate with TRANSFER_TLS', async () => {
      const { url, got } = await serve((_r, res) => json(res, 201, {}), (h) => https.createServer({ cert: pki.cert, key: pki.key }, h));
      const ok = await uploadPackage(tar, url, { ...fast, caFile: pki.caFile });
      expect(ok.status).toBe(201);
      expect(got[0]!.body.equals(bytes)).toBe(true);
      const err = await refusal(uploadPackage(tar, url, { ...fast, retries: 2 }));
      expect(err.code).toBe('TRANSFER_TLS');
      expect(got).toHaveLength(1);
    });
  });
});
