import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { dirname } from 'node:path';
import { silentLogger, type Logger } from '@kd-edge/core';
import { fsyncDir, writeFileDurable } from '../store/durable-fs.js';
import { TransferError } from './transfer-error.js';

/** Bytes so far and the total expected. */
export interface TransferProgress {
  bytes: number;
  total: number;
}

/** Options of {@link httpDownload}. */
export interface HttpDownloadOptions {
  /** http: or https: URL of the package tar. */
  url: string;
  /** Final path; the download lives in `dest + '.part'` (and `.part.json`) until it is verified. */
  dest: string;
  /** Exact size in bytes, from the command. */
  size: number;
  /** SHA-256 of the whole file, lower-case hex, from the command. */
  sha256: string;
  /** Extra request headers (an Authorization token, say); dropped on a redirect to another origin. */
  headers?: Record<string, string>;
  /** Certificate authorities to trust for https (PEM), in place of the system's. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Aborting stops the transfer with TRANSFER_ABORTED and keeps the part for a later resume. */
  signal?: AbortSignal;
  /** Called as bytes arrive (once per received block: throttle in the caller). */
  onProgress?: (progress: TransferProgress) => void;
  /** Refuse a `size` above this (TRANSFER_TOO_LARGE) before sending anything. */
  maxBytes?: number;
  /** Attempts after the first on network errors, timeouts and 5xx/408/429 (default 3); each resumes from the part. */
  retries?: number;
  /** Delay before the first retry, doubled each time up to 30 s (default 1000). */
  retryDelayMs?: number;
  /** Socket idle time that counts as a failed attempt (default 30 000). */
  timeoutMs?: number;
  /** Redirects followed (default 5). */
  maxRedirects?: number;
  logger?: Partial<Logger>;
}

/** What {@link httpDownload} did. */
export interface HttpDownloadResult {
  path: string;
  size: number;
  sha256: string;
  /** Bytes of an earlier partial download that were reused (the file's size when dest was already whole). */
  resumedFrom: number;
  /** Body bytes received over the network by this call. */
  fetchedBytes: number;
  /** Requests that returned a body, redirects not counted. */
  requests: number;
}

/** The `.part.json` sidecar: what the part belongs to and the server's validators for If-Range. */
interface Sidecar {
  url: string;
  sha256: string;
  size: number;
  etag?: string;
  lastModified?: string;
}

const SHA256_RE = /^[0-9a-f]{64}$/;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function checkOptions(o: HttpDownloadOptions): URL {
  if (typeof o !== 'object' || o === null) throw new TypeError('options must be an object');
  let url: URL;
  try {
    url = new URL(o.url);
  } catch (err) {
    throw new TypeError(`options.url is not a URL: ${String(o.url)}`, { cause: err });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`options.url must be http: or https:, got ${url.protocol}`);
  if (typeof o.dest !== 'string' || o.dest === '') throw new TypeError('options.dest must be a file path');
  if (!Number.isSafeInteger(o.size) || o.size < 0) throw new RangeError(`options.size must be an integer >= 0, got ${String(o.size)}`);
  if (typeof o.sha256 !== 'string' || !SHA256_RE.test(o.sha256)) throw new TypeError('options.sha256 must be 64 lower-case hex digits');
  for (const [name, v] of [
    ['maxBytes', o.maxBytes],
    ['retries', o.retries],
    ['retryDelayMs', o.retryDelayMs],
    ['timeoutMs', o.timeoutMs],
    ['maxRedirects', o.maxRedirects],
  ] as const) {
    if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new RangeError(`options.${name} must be a number >= 0, got ${String(v)}`);
  }
  return url;
}

async function sizeOf(path: string): Promise<number | undefined> {
  return stat(path).then(
    (st) => st.size,
    (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)),
  );
}

/** Stream a file through SHA-256. */
export async function sha256File(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    const s = JSON.parse(await readFile(path, 'utf8')) as Sidecar;
    if (typeof s.url !== 'string' || typeof s.sha256 !== 'string' || typeof s.size !== 'number') return undefined;
    return s;
  } catch {
    return undefined;
  }
}

function retryable(err: unknown): boolean {
  if (!(err instanceof TransferError)) return false;
  if (err.code === 'TRANSFER_NETWORK' || err.code === 'TRANSFER_TIMEOUT') return true;
  return err.code === 'TRANSFER_HTTP_STATUS' && err.status !== undefined && (err.status >= 500 || err.status === 408 || err.status === 429);
}

function abortError(url: string, cause?: unknown): TransferError {
  return new TransferError('TRANSFER_ABORTED', `download of ${url} aborted; the partial file is kept for a resume`, { cause });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort(): void {
      clearTimeout(t);
      reject(signal?.reason);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const HIGH_WATER = 4 << 20;

/**
 * Collects a response body from the moment the response arrives and hands each block to a
 * writer, in order, one at a time. Listening at once matters: a stream destroyed by a broken
 * connection drops what it buffered, so blocks that arrived before the break are kept here and
 * still written, and a resume loses nothing it was sent.
 */
class BodyQueue {
  readonly #res: IncomingMessage;
  readonly #queue: Buffer[] = [];
  #queued = 0;
  #ended = false;
  #failure: unknown;
  #wake: (() => void) | undefined;

  constructor(res: IncomingMessage) {
    this.#res = res;
    res.on('data', (chunk: Buffer) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      // Back-pressure: a slow disk must not make the queue hold the whole file.
      if (this.#queued > HIGH_WATER) res.pause();
      this.#notify();
    });
    res.on('end', () => {
      this.#ended = true;
      this.#notify();
    });
    res.on('error', (err) => {
      this.#failure ??= err;
      this.#notify();
    });
    res.on('close', () => {
      if (!this.#ended) this.#failure ??= new Error('the connection closed before the body ended');
      this.#notify();
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Write every block received, then resolve at the end of the body or reject with the connection's failure. */
  async drain(write: (chunk: Buffer) => Promise<void>): Promise<void> {
    for (;;) {
      const chunk = this.#queue.shift();
      if (chunk !== undefined) {
        this.#queued -= chunk.length;
        if (this.#queued < HIGH_WATER / 2 && this.#res.isPaused()) this.#res.resume();
        try {
          await write(chunk);
        } catch (err) {
          this.discard();
          throw err;
        }
        continue;
      }
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Drop the body and the connection. */
  discard(): void {
    this.#queue.length = 0;
    this.#res.destroy();
  }
}

/** One GET, following redirects; the caller consumes or destroys the response. */
async function get(
  start: URL,
  headers: Record<string, string>,
  rangeHeaders: Record<string, string>,
  o: HttpDownloadOptions,
): Promise<{ res: IncomingMessage; body: BodyQueue; url: URL }> {
  let url = start;
  let extra = headers;
  for (let hop = 0; ; hop++) {
    const mod = url.protocol === 'https:' ? https : http;
    const { res, body } = await new Promise<{ res: IncomingMessage; body: BodyQueue }>((resolve, reject) => {
      const req = mod.request(url, { method: 'GET', headers: { ...extra, ...rangeHeaders }, ca: o.ca, signal: o.signal }, (r) =>
        resolve({ res: r, body: new BodyQueue(r) }),
      );
      req.setTimeout(o.timeoutMs ?? 30_000, () =>
        req.destroy(new TransferError('TRANSFER_TIMEOUT', `no data from ${url.origin} for ${o.timeoutMs ?? 30_000} ms`)),
      );
      req.on('error', reject);
      req.end();
    });
    const status = res.statusCode ?? 0;
    if (!REDIRECTS.has(status)) return { res, body, url };
    body.discard();
    const location = res.headers.location;
    if (location === undefined) throw new TransferError('TRANSFER_HTTP_STATUS', `${url.href} answered ${status} without a Location`, { status });
    if (hop >= (o.maxRedirects ?? 5)) throw new TransferError('TRANSFER_HTTP_STATUS', `more than ${o.maxRedirects ?? 5} redirects from ${start.href}`, { status });
    const next = new URL(location, url);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new TransferError('TRANSFER_HTTP_STATUS', `${url.href} redirected to ${next.protocol}`, { status });
    }
    // Credentials meant for one origin are not handed to another.
    if (next.origin !== url.origin) extra = {};
    url = next;
  }
}

/**
 * Download `url` to `dest` through `dest.part`, resuming an earlier part with `Range` and
 * `If-Range` (a 206 appends, a 200 starts over, a 416 or a changed validator restarts),
 * refusing more bytes than `size` (TRANSFER_TOO_LARGE), and checking size and SHA-256 before an
 * atomic rename into place (TRANSFER_HASH_MISMATCH deletes the part; a mismatch after a resume
 * first retries once from zero). Network failures are retried `retries` times, and the part
 * survives a failed or aborted call so the next call continues where this one stopped.
 * @example
 * await httpDownload({ url: pkg.http.url, dest: join(store.downloadsDir, `${pkg.sha256}.tar`), size: pkg.size, sha256: pkg.sha256,
 *   onProgress: ({ bytes, total }) => progress.report(bytes, total) });
 */
export async function httpDownload(options: HttpDownloadOptions): Promise<HttpDownloadResult> {
  const url = checkOptions(options);
  const { dest, size, sha256, signal } = options;
  const log: Logger = { ...silentLogger, ...options.logger };
  if (options.maxBytes !== undefined && size > options.maxBytes) {
    throw new TransferError('TRANSFER_TOO_LARGE', `${url.href} is ${size} bytes, more than the ${options.maxBytes} allowed`);
  }
  if (signal?.aborted === true) throw abortError(url.href, signal.reason);
  // A function, so the compiler does not keep the narrowing above across awaits.
  const isAborted = (): boolean => signal?.aborted === true;

  if ((await sizeOf(dest)) === size && (await sha256File(dest)).sha256 === sha256) {
    return { path: dest, size, sha256, resumedFrom: size, fetchedBytes: 0, requests: 0 };
  }

  const part = `${dest}.part`;
  const sidePath = `${part}.json`;
  let side = await readSidecar(sidePath);
  let have = (await sizeOf(part)) ?? 0;
  if (side === undefined || side.sha256 !== sha256 || side.size !== size || have > size) {
    // A part of another artifact, or one without its sidecar, cannot be trusted to be a prefix of this one.
    await rm(part, { force: true });
    have = 0;
    side = { url: url.href, sha256, size };
    await writeFileDurable(sidePath, JSON.stringify(side));
  }
  const resumedFrom = have;
  let resumed = have > 0;
  let fetchedBytes = 0;
  let requests = 0;

  const fetchRest = async (): Promise<void> => {
    // Loops only to restart from zero when the server cannot continue the part (416, a changed
    // validator, a Content-Range that does not fit).
    for (let restarts = 0; ; restarts++) {
      const from = (await sizeOf(part)) ?? 0;
      if (from >= size) return;
      const range: Record<string, string> = {};
      if (from > 0) {
        range.Range = `bytes=${from}-`;
        // Validators belong to the server that gave them; the final hash covers a mirror change.
        const sameUrl = side!.url === url.href;
        const strongEtag = side!.etag !== undefined && !side!.etag.startsWith('W/') ? side!.etag : undefined;
        const validator = sameUrl ? (strongEtag ?? side!.lastModified) : undefined;
        if (validator !== undefined) range['If-Range'] = validator;
      }
      const { res, body, url: finalUrl } = await get(url, options.headers ?? {}, range, options);
      const status = res.statusCode ?? 0;
      const restart = async (why: string): Promise<void> => {
        body.discard();
        if (restarts >= 2) throw new TransferError('TRANSFER_HTTP_STATUS', `${finalUrl.href} cannot serve ${why}`, { status });
        log.info(`download ${url.href}: ${why}; starting over`);
        await rm(part, { force: true });
        resumed = false;
      };
      if (status === 416) {
        await restart(`the range from byte ${from} (416)`);
        continue;
      }
      let offset: number;
      if (status === 206 && from > 0) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
        if (m === null || Number(m[1]) !== from || (m[3] !== '*' && Number(m[3]) !== size)) {
          await restart(`a range that fits the part (Content-Range ${String(res.headers['content-range'])})`);
          continue;
        }
        offset = from;
      } else if (status === 200) {
        offset = 0;
        if (from > 0) log.info(`download ${url.href}: the server sent the whole file (200) instead of bytes ${from}-; starting over`);
        resumed = false;
        side = { url: url.href, sha256, size };
        const etag = res.headers.etag;
        const lastModified = res.headers['last-modified'];
        if (etag !== undefined) side.etag = etag;
        if (lastModified !== undefined) side.lastModified = lastModified;
        await writeFileDurable(sidePath, JSON.stringify(side));
      } else {
        body.discard();
        throw new TransferError('TRANSFER_HTTP_STATUS', `${finalUrl.href} answered ${status} ${res.statusMessage ?? ''}`.trim(), { status });
      }
      requests++;

      const tooLarge = async (n: number): Promise<never> => {
        body.discard();
        await rm(part, { force: true });
        await rm(sidePath, { force: true });
        throw new TransferError('TRANSFER_TOO_LARGE', `${finalUrl.href} sent ${n} bytes or more; the command says ${size}`);
      };
      const length = res.headers['content-length'];
      if (length !== undefined && offset + Number(length) > size) await tooLarge(offset + Number(length));

      const fh = await open(part, offset === 0 ? 'w' : 'r+');
      let pos = offset;
      try {
        options.onProgress?.({ bytes: pos, total: size });
        try {
          await body.drain(async (chunk) => {
            if (pos + chunk.length > size) await tooLarge(pos + chunk.length);
            await fh.write(chunk, 0, chunk.length, pos);
            pos += chunk.length;
            fetchedBytes += chunk.length;
            options.onProgress?.({ bytes: pos, total: size });
          });
        } catch (err) {
          if (err instanceof TransferError) throw err;
          if (isAborted()) throw abortError(url.href, err);
          throw new TransferError('TRANSFER_NETWORK', `download of ${url.href} broke at byte ${pos} of ${size}: ${(err as Error).message}`, { cause: err });
        }
        if (pos < size) throw new TransferError('TRANSFER_NETWORK', `${finalUrl.href} ended the body at byte ${pos} of ${size}`);
      } finally {
        await fh.sync().catch(() => undefined);
        await fh.close();
      }
      return;
    }
  };

  let restartedFresh = false;
  for (let attempt = 0; ; attempt++) {
    try {
      await fetchRest();
      const got = await sha256File(part);
      if (got.size !== size || got.sha256 !== sha256) {
        await rm(part, { force: true });
        if (resumed && !restartedFresh) {
          // The earlier part was stale or damaged: one full download decides.
          log.warn(`download ${url.href}: the resumed file did not match its SHA-256; downloading it whole`);
          restartedFresh = true;
          resumed = false;
          attempt--;
          continue;
        }
        await rm(sidePath, { force: true });
        throw new TransferError(
          got.size !== size ? 'TRANSFER_SIZE_MISMATCH' : 'TRANSFER_HASH_MISMATCH',
          got.size !== size
            ? `${url.href} gave ${got.size} bytes; the command says ${size}`
            : `${url.href} has SHA-256 ${got.sha256}; the command says ${sha256}`,
        );
      }
      await rename(part, dest);
      await fsyncDir(dirname(dest));
      await rm(sidePath, { force: true });
      return { path: dest, size, sha256, resumedFrom, fetchedBytes, requests };
    } catch (err) {
      let e = err;
      if (isAborted() && !(e instanceof TransferError && e.code === 'TRANSFER_ABORTED')) e = abortError(url.href, err);
      else if (!(e instanceof TransferError)) {
        e = new TransferError('TRANSFER_NETWORK', `download of ${url.href} failed: ${(err as Error).message}`, { cause: err });
      }
      if (!retryable(e) || attempt >= (options.retries ?? 3)) throw e;
      const delay = Math.min(30_000, (options.retryDelayMs ?? 1000) * 2 ** attempt);
      log.warn(`download ${url.href}: ${(e as Error).message}; retry ${attempt + 1} in ${delay} ms`);
      try {
        await sleep(delay, signal);
      } catch (abortReason) {
        throw abortError(url.href, abortReason);
      }
      resumed = ((await sizeOf(part)) ?? 0) > 0;
    }
  }
}
