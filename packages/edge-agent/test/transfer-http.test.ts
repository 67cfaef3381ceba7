import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { httpDownload, type HttpDownloadOptions } from '../src/transfer/http-download.js';
import { modelBytes } from './store-helpers.js';
import { exists, failure } from './transfer-helpers.js';

const BODY = modelBytes(200_000, 11);
const SHA = createHash('sha256').update(BODY).digest('hex');

/** What the test server does; tests change it between calls. */
interface Behaviour {
  body: Buffer;
  etag: string;
  ignoreRange: boolean;
  always416: boolean;
  /** For the next requests in turn: drop the connection after this many body bytes. */
  dropAfter: number[];
  /** For the next requests in turn: answer with this status and no body. */
  statuses: number[];
  /** Send these extra bytes after the body (with a Content-Length that includes them unless chunked). */
  extra: Buffer;
  chunked: boolean;
  /** Send this many bytes, then hang until the client goes away. */
  hangAfter: number | undefined;
  /** For the next requests in turn: send `after` bytes at once, then one byte every `everyMs`. */
  trickle: Array<{ after: number; everyMs: number }>;
  /** Headers of the answers from `statuses`. */
  statusHeaders: Record<string, string>;
}

interface Seen {
  url: string;
  range: string | undefined;
  ifRange: string | undefined;
  auth: string | undefined;
  status: number;
}

let server: Server;
let base: string;
let b: Behaviour;
let seen: Seen[];
let dir: string;

function reset(): void {
  b = { body: BODY, etag: '"v1"', ignoreRange: false, always416: false, dropAfter: [], statuses: [], extra: Buffer.alloc(0), chunked: false, hangAfter: undefined, trickle: [], statusHeaders: {} };
  seen = [];
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const log: Seen = { url: req.url ?? '', range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined, auth: req.headers.authorization, status: 0 };
    seen.push(log);
    const send = (status: number, headers: Record<string, string | number>, data: Buffer): void => {
      log.status = status;
      if (b.chunked) delete headers['Content-Length'];
      res.writeHead(status, { ETag: b.etag, 'Accept-Ranges': 'bytes', ...headers });
      const drop = b.dropAfter.shift();
      if (drop !== undefined) {
        res.write(data.subarray(0, drop), () => setImmediate(() => req.socket.destroy()));
        return;
      }
      const trickle = b.trickle.shift();
      if (trickle !== undefined) {
        if (trickle.after > 0) res.write(data.subarray(0, trickle.after));
        let at = trickle.after;
        const t = setInterval(() => {
          if (at < data.length) res.write(data.subarray(at, ++at));
          else res.end();
        }, trickle.everyMs);
        res.on('close', () => clearInterval(t));
        return;
      }
      if (b.hangAfter !== undefined) {
        res.write(data.subarray(0, b.hangAfter));
        return;
      }
      res.end(data);
    };
    if (req.url === '/redirect') {
      log.status = 302;
      res.writeHead(302, { Location: '/file' }).end();
      return;
    }
    const status = b.statuses.shift();
    if (status !== undefined) {
      log.status = status;
      res.writeHead(status, b.statusHeaders).end();
      return;
    }
    const full = Buffer.concat([b.body, b.extra]);
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const validatorOk = log.ifRange === undefined || log.ifRange === b.etag;
    if (m !== null && !b.ignoreRange && validatorOk) {
      const start = Number(m[1]);
      if (b.always416 || start >= b.body.length) {
        log.status = 416;
        res.writeHead(416, { 'Content-Range': `bytes */${b.body.length}` }).end();
        return;
      }
      const data = full.subarray(start);
      send(206, { 'Content-Range': `bytes ${start}-${b.body.length - 1}/${b.body.length}`, 'Content-Length': data.length }, data);
      return;
    }
    send(200, { 'Content-Length': full.length }, full);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

beforeEach(async () => {
  reset();
  dir = await mkdtemp(join(tmpdir(), 'kd-http-'));
});

afterEach(async () => {
  server.closeAllConnections();
  await rm(dir, { recursive: true, force: true });
});

function opts(extra: Partial<HttpDownloadOptions> = {}): HttpDownloadOptions {
  return { url: `${base}/file`, dest: join(dir, 'pkg.tar'), size: BODY.length, sha256: SHA, retries: 0, retryDelayMs: 1, ...extra };
}

describe('httpDownload', () => {
  it('downloads, verifies and renames into place, leaving no part or sidecar', async () => {
    const progress: number[] = [];
    const r = await httpDownload(opts({ onProgress: (p) => progress.push(p.bytes) }));
    expect(r).toMatchObject({ size: BODY.length, sha256: SHA, resumedFrom: 0, fetchedBytes: BODY.length, requests: 1 });
    expect((await readFile(r.path)).equals(BODY)).toBe(true);
    expect(await exists(`${r.path}.part`)).toBe(false);
    expect(await exists(`${r.path}.part.json`)).toBe(false);
    expect(progress.at(-1)).toBe(BODY.length);
    // A second call finds the verified file and fetches nothing.
    expect(await httpDownload(opts())).toMatchObject({ fetchedBytes: 0, requests: 0 });
    expect(seen).toHaveLength(1);
  });

  it('resumes with Range after the server drops the connection mid-body', async () => {
    b.dropAfter = [70_000];
    const r = await httpDownload(opts({ retries: 2 }));
    expect((await readFile(r.path)).equals(BODY)).toBe(true);
    expect(seen.map((s) => [s.status, s.range, s.ifRange])).toEqual([
      [200, undefined, undefined],
      [206, 'bytes=70000-', '"v1"'],
    ]);
    expect(r.fetchedBytes).toBe(BODY.length);
  });

  it('continues from the .part when a new call is made after the previous one failed (agent restart)', async () => {
    b.dropAfter = [50_000];
    const first = await failure(httpDownload(opts()));
    expect(first.code).toBe('TRANSFER_NETWORK');
    expect((await stat(join(dir, 'pkg.tar.part'))).size).toBe(50_000);
    const side = JSON.parse(await readFile(join(dir, 'pkg.tar.part.json'), 'utf8')) as Record<string, unknown>;
    expect(side).toMatchObject({ url: `${base}/file`, sha256: SHA, size: BODY.length, etag: '"v1"' });

    const r = await httpDownload(opts());
    expect(r).toMatchObject({ resumedFrom: 50_000, fetchedBytes: BODY.length - 50_000 });
    expect(seen.at(-1)).toMatchObject({ range: 'bytes=50000-', ifRange: '"v1"', status: 206 });
    expect((await readFile(r.path)).equals(BODY)).toBe(true);
  });

  it('starts over when the server ignores Range (200), the validator changed, or the range is refused (416)', async () => {
    for (const change of [() => (b.ignoreRange = true), () => (b.etag = '"v2"'), () => (b.always416 = true)]) {
      reset();
      b.dropAfter = [40_000];
      await failure(httpDownload(opts()));
      change();
      const r = await httpDownload(opts());
      expect((await readFile(r.path)).equals(BODY)).toBe(true);
      expect(r.fetchedBytes).toBe(BODY.length);
      expect(seen.at(-1)).toMatchObject({ status: 200 });
      await rm(r.path);
    }
  });

  it('throws TRANSFER_HASH_MISMATCH on corrupted bytes and deletes the part', async () => {
    const bad = Buffer.from(BODY);
    bad[123_456] ^= 0x40;
    b.body = bad;
    const err = await failure(httpDownload(opts()));
    expect(err.code).toBe('TRANSFER_HASH_MISMATCH');
    expect(err.message).toContain(SHA);
    for (const f of ['pkg.tar', 'pkg.tar.part', 'pkg.tar.part.json']) expect(await exists(join(dir, f))).toBe(false);
  });

  it('downloads whole once more when a resumed part turns out damaged', async () => {
    b.dropAfter = [60_000];
    await failure(httpDownload(opts()));
    const part = join(dir, 'pkg.tar.part');
    const damaged = await readFile(part);
    damaged[10] ^= 1;
    await writeFile(part, damaged);
    const r = await httpDownload(opts());
    expect((await readFile(r.path)).equals(BODY)).toBe(true);
    expect(seen.slice(1).map((s) => s.status)).toEqual([206, 200]);
  });

  it('refuses more bytes than the size: by Content-Length, mid-stream when chunked, and a size above maxBytes before asking', async () => {
    b.extra = Buffer.alloc(10);
    expect((await failure(httpDownload(opts()))).code).toBe('TRANSFER_TOO_LARGE');
    b.chunked = true;
    expect((await failure(httpDownload(opts()))).code).toBe('TRANSFER_TOO_LARGE');
    expect(await exists(join(dir, 'pkg.tar.part'))).toBe(false);
    const before = seen.length;
    const err = await failure(httpDownload(opts({ maxBytes: BODY.length - 1 })));
    expect(err.code).toBe('TRANSFER_TOO_LARGE');
    expect(seen).toHaveLength(before);
  });

  it('stops on abort with TRANSFER_ABORTED, keeps the part, and a later call resumes it', async () => {
    b.hangAfter = 80_000;
    const ac = new AbortController();
    const err = await failure(
      httpDownload(
        opts({
          signal: ac.signal,
          retries: 3,
          onProgress: (p) => {
            if (p.bytes >= 80_000) ac.abort();
          },
        }),
      ),
    );
    expect(err.code).toBe('TRANSFER_ABORTED');
    expect(seen).toHaveLength(1);
    expect((await stat(join(dir, 'pkg.tar.part'))).size).toBe(80_000);
    b.hangAfter = undefined;
    const r = await httpDownload(opts());
    expect(r.resumedFrom).toBe(80_000);
    expect((await readFile(r.path)).equals(BODY)).toBe(true);
  });

  it('retries 5xx but not 404, and follows a redirect on the same origin with the headers', async () => {
    b.statuses = [404];
    const err = await failure(httpDownload(opts({ retries: 3 })));
    expect(err).toMatchObject({ code: 'TRANSFER_HTTP_STATUS', status: 404 });
    expect(seen).toHaveLength(1);
    b.statuses = [503, 503];
    const r = await httpDownload(opts({ retries: 3, url: `${base}/redirect`, headers: { Authorization: 'Bearer t' } }));
    expect((await readFile(r.path)).equals(BODY)).toBe(true);
    expect(seen.slice(1).map((s) => [s.url, s.status, s.auth])).toEqual([
      ['/redirect', 302, 'Bearer t'],
      ['/file', 503, 'Bearer t'],
      ['/redirect', 302, 'Bearer t'],
      ['/file', 503, 'Bearer t'],
      ['/redirect', 302, 'Bearer t'],
      ['/file', 200, 'Bearer t'],
    ]);
  });

  it('checks its arguments', async () => {
    await expect(httpDownload(opts({ url: 'ftp://x/y' }))).rejects.toThrow(TypeError);
    await expect(httpDownload(opts({ sha256: 'abc' }))).rejects.toThrow(/sha256/);
    await expect(httpDownload(opts({ size: -1 }))).rejects.toThrow(RangeError);
    await expect(httpDownload(opts({ deadlineMs: -1 }))).rejects.toThrow(/options\.deadlineMs/);
    await expect(httpDownload(opts({ rateWindowMs: 0 }))).rejects.toThrow(/options\.rateWindowMs/);
    await expect(httpDownload(opts({ retryWindowMs: Number.NaN }))).rejects.toThrow(RangeError);
    await expect(httpDownload(opts({ random: 0.5 as unknown as () => number }))).rejects.toThrow(TypeError);
    expect(seen).toHaveLength(0);
  });
});

/** Collects warnings (retries are logged there with their delay). */
function warnings(): { logger: { warn: (m: string) => void }; lines: string[]; delays: () => number[] } {
  const lines: string[] = [];
  return {
    logger: { warn: (m) => lines.push(m) },
    lines,
    delays: () => lines.flatMap((l) => /; retry \d+ in (\d+) ms$/.exec(l)?.[1] ?? []).map(Number),
  };
}

describe('httpDownload deadline, stalls and the retry window', () => {
  // Options for the tests below: the retry window (not a count) governs, as in kd-agent.
  const windowed = (extra: Partial<HttpDownloadOptions> = {}): HttpDownloadOptions => opts({ retries: undefined, ...extra });

  it('ends a trickling download at its deadline with TRANSFER_TIMEOUT, keeps the part, and a later call resumes it', { timeout: 10_000 }, async () => {
    // One byte every 100 ms: the socket is never idle long enough for timeoutMs, and before the
    // deadline existed this call never ended.
    b.trickle = Array.from({ length: 5 }, () => ({ after: 0, everyMs: 100 }));
    const err = await failure(httpDownload(windowed({ deadlineMs: 1500 })));
    expect(err.code).toBe('TRANSFER_TIMEOUT');
    const kept = (await stat(join(dir, 'pkg.tar.part'))).size;
    expect(kept).toBeGreaterThan(0);
    expect(err.message).toContain('deadline of 1500 ms');
    expect(err.message).toContain(`${kept} of ${BODY.length} bytes`);
    expect(await exists(join(dir, 'pkg.tar.part.json'))).toBe(true);

    b.trickle = [];
    const r = await httpDownload(opts());
    expect(r).toMatchObject({ resumedFrom: kept, fetchedBytes: BODY.length - kept });
    expect(seen.at(-1)).toMatchObject({ range: `bytes=${kept}-`, status: 206 });
    expect((await readFile(r.path)).equals(BODY)).toBe(true);
  });

  it('abandons a connection below the minimum rate as a stall and resumes from the part on a retry', { timeout: 10_000 }, async () => {
    b.trickle = [{ after: 50_000, everyMs: 50 }];
    const w = warnings();
    const r = await httpDownload(windowed({ minBytesPerSec: 1000, rateWindowMs: 500, logger: w.logger }));
    expect((await readFile(r.path)).equals(BODY)).toBe(true);
    expect(r.fetchedBytes).toBe(BODY.length);
    expect(seen).toHaveLength(2);
    expect(seen[0]!.status).toBe(200);
    expect(seen[1]!.status).toBe(206);
    expect(Number(/^bytes=(\d+)-$/.exec(seen[1]!.range ?? '')?.[1])).toBeGreaterThanOrEqual(50_000);
    expect(w.lines).toHaveLength(1);
    expect(w.lines[0]).toMatch(/below the minimum of 1000 bytes\/s; the connection is abandoned as stalled; retry 1/);
  });

  it('reports a socket gone silent mid-body as TRANSFER_TIMEOUT (not a network error) and keeps what came', async () => {
    b.hangAfter = 30_000;
    const err = await failure(httpDownload(opts({ timeoutMs: 300 })));
    expect(err.code).toBe('TRANSFER_TIMEOUT');
    expect(err.message).toMatch(/no data from http:\/\/127\.0\.0\.1:\d+ for 300 ms/);
    expect((await stat(join(dir, 'pkg.tar.part'))).size).toBe(30_000);
  });

  it('retries a 503 outage of many tries within the retry window, the delay doubling up to its cap', async () => {
    b.statuses = Array<number>(6).fill(503);
    const w = warnings();
    // random 0: each delay is the lower end of its jitter range, half the backoff.
    const r = await httpDownload(windowed({ retryDelayMs: 10, retryMaxDelayMs: 80, retryWindowMs: 10_000, random: () => 0, logger: w.logger }));
    expect((await readFile(r.path)).equals(BODY)).toBe(true);
    expect(seen.map((s) => s.status)).toEqual([503, 503, 503, 503, 503, 503, 200]);
    expect(w.delays()).toEqual([5, 10, 20, 40, 40, 40]);
  });

  it('gives up with the last error when the outage outlasts the retry window', async () => {
    b.statuses = Array<number>(10_000).fill(503);
    const err = await failure(httpDownload(windowed({ retryDelayMs: 10, retryMaxDelayMs: 40, retryWindowMs: 300 })));
    expect(err).toMatchObject({ code: 'TRANSFER_HTTP_STATUS', status: 503 });
    expect(err.message).toMatch(/answered 503.*gave up after \d+ retries over \d+ ms/);
    expect(seen.length).toBeGreaterThan(2);
    expect(b.statuses.length).toBeGreaterThan(0);
  });

  it('waits as long as Retry-After asks, but not past the retry window or the deadline', async () => {
    b.statuses = [503];
    b.statusHeaders = { 'Retry-After': '1' };
    const w = warnings();
    const r = await httpDownload(windowed({ retryDelayMs: 1, logger: w.logger }));
    expect((await readFile(r.path)).equals(BODY)).toBe(true);
    expect(w.delays()).toEqual([1000]);
    await rm(r.path);

    // A server asking for an hour gets one more try at the window's end, then the last error.
    b.statuses = [503, 503];
    b.statusHeaders = { 'Retry-After': '3600' };
    const w2 = warnings();
    const err = await failure(httpDownload(windowed({ retryDelayMs: 1, retryWindowMs: 300, logger: w2.logger })));
    expect(err).toMatchObject({ code: 'TRANSFER_HTTP_STATUS', status: 503 });
    expect(w2.delays()).toEqual([300]);

    // When the wait would pass the deadline, the call ends now, naming the deadline and the last failure.
    b.statuses = [503];
    const before = seen.length;
    const late = await failure(httpDownload(windowed({ deadlineMs: 2000 })));
    expect(late.code).toBe('TRANSFER_TIMEOUT');
    expect(late.message).toMatch(/next retry would pass its deadline of 2000 ms, after .*answered 503/);
    expect(seen).toHaveLength(before + 1);
  });

  it('stops with TRANSFER_ABORTED as soon as the signal aborts during a retry wait', async () => {
    b.statuses = [503];
    const ac = new AbortController();
    const started = performance.now();
    // Abort once the wait (at least 30 s here) has begun.
    const err = await failure(
      httpDownload(windowed({ retryDelayMs: 60_000, retryMaxDelayMs: 60_000, signal: ac.signal, logger: { warn: () => setTimeout(() => ac.abort(), 50) } })),
    );
    expect(err.code).toBe('TRANSFER_ABORTED');
    expect(seen).toHaveLength(1);
    // Far below the shortest possible wait: the abort, not the timer, ended the call.
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});
