import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { dirname } from 'node:path';
import { silentLogger, type Logger, fsyncDir, writeFileDurable } from '@kd-edge/core';
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
  /**
   * Time the whole call may take, every attempt, redirect, retry wait and the hash check included
   * (default 30 min; 0: none). When it passes the call fails with TRANSFER_TIMEOUT, not retried,
   * and the part is kept for a later call to resume.
   */
  deadlineMs?: number;
  /**
   * A connection whose body arrives slower than this over the last `rateWindowMs` is abandoned as
   * a stall (TRANSFER_TIMEOUT, retried from the part). Default 1024; 0 turns the check off.
   */
  minBytesPerSec?: number;
  /** The sliding window `minBytesPerSec` is measured over, from the request on (default 30 000). */
  rateWindowMs?: number;
  /**
   * How long retryable failures (network errors, timeouts and stalls, 5xx/408/429) go on being
   * retried, counted from the first failure since the part last grew (default 5 min; 0: no retries).
   */
  retryWindowMs?: number;
  /** An extra cap on the retries of one call (default: none, the window decides). */
  retries?: number;
  /** Delay before the first retry, doubled after each failure up to `retryMaxDelayMs` (default 1000). */
  retryDelayMs?: number;
  /** Longest delay between retries (default 30 000); a longer `Retry-After` on 429/503 is honoured within the window and the deadline. */
  retryMaxDelayMs?: number;
  /** Returns [0, 1): the jitter of retry delays, each drawn from [delay/2, delay) (default Math.random; tests fix it). */
  random?: () => number;
  /** Socket idle time that counts as a failed attempt, TRANSFER_TIMEOUT (default 30 000; 0: none). */
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
/** setTimeout's longest delay; a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Defaults of {@link HttpDownloadOptions} (kd-agent passes its `limits.download*` settings instead).
 * - deadline 30 min: bounds a deploy against a server that keeps every connection barely alive,
 *   yet a 100 MiB package fits at ~60 KiB/s; past it the part survives for the next deploy.
 * - 1 KiB/s over 30 s: far below any link a model is deployed over (even GPRS-class links carry a
 *   few KiB/s), far above a trickle meant to hold the connection; 30 s, like the idle timeout, rides
 *   out TCP retransmission backoff and a brief radio drop-out without calling it a stall.
 * - retry window 5 min, delays 1 s doubling to 30 s: outlasts an artifact server's restart or a
 *   router's reboot with about ten tries, without hanging a deploy on a server that is gone.
 */
const DEFAULTS = {
  deadlineMs: 30 * 60_000,
  minBytesPerSec: 1024,
  rateWindowMs: 30_000,
  retryWindowMs: 5 * 60_000,
  retryDelayMs: 1000,
  retryMaxDelayMs: 30_000,
  timeoutMs: 30_000,
  maxRedirects: 5,
} as const;

type Settings = { -readonly [K in keyof typeof DEFAULTS]: number } & { random: () => number };

function checkOptions(o: HttpDownloadOptions): { url: URL; cfg: Settings } {
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
  if (o.random !== undefined && typeof o.random !== 'function') throw new TypeError('options.random must be a function returning [0, 1)');
  for (const [name, v] of [
    ['maxBytes', o.maxBytes],
    ['retries', o.retries],
    ['minBytesPerSec', o.minBytesPerSec],
    ['maxRedirects', o.maxRedirects],
  ] as const) {
    if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new RangeError(`options.${name} must be a number >= 0, got ${String(v)}`);
  }
  // Durations become timers, so they must fit one.
  for (const [name, v] of [
    ['deadlineMs', o.deadlineMs],
    ['retryWindowMs', o.retryWindowMs],
    ['retryDelayMs', o.retryDelayMs],
    ['retryMaxDelayMs', o.retryMaxDelayMs],
    ['timeoutMs', o.timeoutMs],
  ] as const) {
    if (v !== undefined && (!Number.isFinite(v) || v < 0 || v > MAX_TIMER_MS)) {
      throw new RangeError(`options.${name} must be a number from 0 to ${MAX_TIMER_MS}, got ${String(v)}`);
    }
  }
  if (o.rateWindowMs !== undefined && (!Number.isFinite(o.rateWindowMs) || o.rateWindowMs < 1 || o.rateWindowMs > MAX_TIMER_MS)) {
    throw new RangeError(`options.rateWindowMs must be a number from 1 to ${MAX_TIMER_MS}, got ${String(o.rateWindowMs)}`);
  }
  const cfg: Settings = { ...DEFAULTS, random: o.random ?? Math.random };
  for (const key of Object.keys(DEFAULTS) as Array<keyof typeof DEFAULTS>) {
    const v = o[key];
    if (v !== undefined) cfg[key] = v;
  }
  return { url, cfg };
}

async function sizeOf(path: string): Promise<number | undefined> {
  return stat(path).then(
    (st) => st.size,
    (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)),
  );
}

/** Stream a file through SHA-256; aborting `signal` rejects with its AbortError. */
export async function sha256File(path: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { signal })) {
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

// Node's codes for a peer certificate that does not verify (OpenSSL's X509 verify errors, and the host name check).
const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'CERT_REVOKED', 'INVALID_CA', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function isCertificateError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CERTIFICATE_ERRORS.has(code);
}

function retryable(err: TransferError): boolean {
  if (err.code === 'TRANSFER_NETWORK' || err.code === 'TRANSFER_TIMEOUT') return true;
  return err.code === 'TRANSFER_HTTP_STATUS' && err.status !== undefined && (err.status >= 500 || err.status === 408 || err.status === 429);
}

/** `Retry-After` (delta-seconds or an HTTP date, RFC 9110 §10.2.3) in ms, on the statuses where it means "come back later". */
function retryAfterMs(res: IncomingMessage): number | undefined {
  const status = res.statusCode ?? 0;
  const raw = res.headers['retry-after']?.trim();
  if ((status !== 429 && status !== 503) || raw === undefined || raw === '') return undefined;
  if (/^\d+$/.test(raw)) return Number(raw) * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function abortError(url: string, cause?: unknown): TransferError {
  return new TransferError('TRANSFER_ABORTED', `download of ${url} aborted; the partial file is kept for a resume`, { cause });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const t = setTimeout(done, ms);
    function done(): void {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort(): void {
      clearTimeout(t);
      reject(signal.reason);
    }
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Calls `onStall` when fewer than `minBytesPerSec` body bytes arrived over the last `windowMs`.
 * Samples are taken at a tenth of the window, so the span judged is the window plus at most one
 * tick, and a few samples are kept however fast the body arrives. It measures from the request
 * on: a server that trickles its headers is as stalled as one that trickles its body.
 */
class RateWatch {
  readonly #min: number;
  readonly #windowMs: number;
  readonly #onStall: (bytes: number, spanMs: number) => void;
  #samples: Array<{ t: number; bytes: number }> = [];
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(minBytesPerSec: number, windowMs: number, onStall: (bytes: number, spanMs: number) => void) {
    this.#min = minBytesPerSec;
    this.#windowMs = windowMs;
    this.#onStall = onStall;
  }

  /** Start (or, after {@link pause}, restart) judging from now. */
  start(): void {
    if (this.#min <= 0 || this.#stopped || this.#timer !== undefined) return;
    this.#samples = [{ t: performance.now(), bytes: this.#bytes }];
    this.#timer = setInterval(() => this.#check(), Math.max(10, this.#windowMs / 10));
  }

  count(n: number): void {
    this.#bytes += n;
  }

  /** Stop judging while the reader holds the body back: a slow disk is not a slow server. */
  pause(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  stop(): void {
    this.#stopped = true;
    this.pause();
  }

  #check(): void {
    const t = performance.now();
    this.#samples.push({ t, bytes: this.#bytes });
    // The base is the newest sample at least a window old.
    while (this.#samples.length > 1 && this.#samples[1]!.t <= t - this.#windowMs) this.#samples.shift();
    const base = this.#samples[0]!;
    const span = t - base.t;
    if (span < this.#windowMs) return;
    const got = this.#bytes - base.bytes;
    if (got * 1000 < this.#min * span) {
      this.stop();
      this.#onStall(got, Math.round(span));
    }
  }
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
  readonly #watch: RateWatch;
  readonly #queue: Buffer[] = [];
  #queued = 0;
  #ended = false;
  #failure: unknown;
  #wake: (() => void) | undefined;

  constructor(res: IncomingMessage, watch: RateWatch) {
    this.#res = res;
    this.#watch = watch;
    res.on('data', (chunk: Buffer) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      watch.count(chunk.length);
      // Back-pressure: a slow disk must not make the queue hold the whole file.
      if (this.#queued > HIGH_WATER) {
        res.pause();
        watch.pause();
      }
      this.#notify();
    });
    res.on('end', () => {
      this.#ended = true;
      watch.stop();
      this.#notify();
    });
    res.on('error', (err) => {
      this.#failure ??= err;
      watch.stop();
      this.#notify();
    });
    res.on('close', () => {
      if (!this.#ended) this.#failure ??= new Error('the connection closed before the body ended');
      watch.stop();
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
        if (this.#queued < HIGH_WATER / 2 && this.#res.isPaused()) {
          this.#res.resume();
          this.#watch.start();
        }
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

  /**
   * Give up on the connection with `err`. Recorded before the socket goes: destroying it makes
   * the response fail with a bare "aborted", which would hide why (a timeout, a stall).
   */
  abort(err: Error): void {
    this.#failure ??= err;
    this.#res.destroy();
    this.#notify();
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
  cfg: Settings,
  signal: AbortSignal,
): Promise<{ res: IncomingMessage; body: BodyQueue; url: URL }> {
  let url = start;
  let extra = headers;
  for (let hop = 0; ; hop++) {
    const mod = url.protocol === 'https:' ? https : http;
    const origin = url.origin;
    const { res, body } = await new Promise<{ res: IncomingMessage; body: BodyQueue }>((resolve, reject) => {
      let body: BodyQueue | undefined;
      // Before the response the request carries the error; after it, the body must (see BodyQueue.abort).
      const fail = (err: TransferError): void => (body !== undefined ? body.abort(err) : void req.destroy(err));
      const watch = new RateWatch(cfg.minBytesPerSec, cfg.rateWindowMs, (bytes, span) =>
        fail(new TransferError('TRANSFER_TIMEOUT', `${origin} sent ${bytes} bytes in ${span} ms, below the minimum of ${cfg.minBytesPerSec} bytes/s; the connection is abandoned as stalled`)),
      );
      const req = mod.request(url, { method: 'GET', headers: { ...extra, ...rangeHeaders }, ca: o.ca, signal }, (r) => {
        body = new BodyQueue(r, watch);
        resolve({ res: r, body });
      });
      if (cfg.timeoutMs > 0) {
        req.setTimeout(cfg.timeoutMs, () => fail(new TransferError('TRANSFER_TIMEOUT', `no data from ${origin} for ${cfg.timeoutMs} ms`)));
      }
      req.on('error', (err) => {
        watch.stop();
        reject(err);
      });
      watch.start();
      req.end();
    });
    const status = res.statusCode ?? 0;
    if (!REDIRECTS.has(status)) return { res, body, url };
    body.discard();
    const location = res.headers.location;
    if (location === undefined) throw new TransferError('TRANSFER_HTTP_STATUS', `${url.href} answered ${status} without a Location`, { status });
    if (hop >= cfg.maxRedirects) throw new TransferError('TRANSFER_HTTP_STATUS', `more than ${cfg.maxRedirects} redirects from ${start.href}`, { status });
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
 * first retries once from zero). Network failures, timeouts, stalls below `minBytesPerSec` and
 * 5xx/408/429 are retried with exponential backoff for `retryWindowMs`, each retry resuming from
 * the part; the whole call ends by `deadlineMs` (TRANSFER_TIMEOUT). The part survives a failed,
 * timed-out or aborted call so the next call continues where this one stopped.
 * @example
 * await httpDownload({ url: pkg.http.url, dest: join(store.downloadsDir, `${pkg.sha256}.tar`), size: pkg.size, sha256: pkg.sha256,
 *   deadlineMs: 30 * 60_000, onProgress: ({ bytes, total }) => progress.report(bytes, total) });
 */
export async function httpDownload(options: HttpDownloadOptions): Promise<HttpDownloadResult> {
  const { url, cfg } = checkOptions(options);
  const { signal } = options;
  if (options.maxBytes !== undefined && options.size > options.maxBytes) {
    throw new TransferError('TRANSFER_TOO_LARGE', `${url.href} is ${options.size} bytes, more than the ${options.maxBytes} allowed`);
  }
  if (signal?.aborted === true) throw abortError(url.href, signal.reason);

  // One signal stops everything in flight (request, retry wait, hash check) for either reason;
  // `stopped` remembers which came first, since that decides the error.
  const stop = new AbortController();
  const run: Run = { url, cfg, options, signal: stop.signal, stopped: undefined, deadlineAt: Infinity };
  const onAbort = (): void => {
    run.stopped ??= 'aborted';
    stop.abort(signal?.reason);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  if (cfg.deadlineMs > 0) {
    run.deadlineAt = performance.now() + cfg.deadlineMs;
    timer = setTimeout(() => {
      run.stopped ??= 'deadline';
      stop.abort(new Error(`the deadline of ${cfg.deadlineMs} ms passed`));
    }, cfg.deadlineMs);
  }
  try {
    return await download(run);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/** The state of one {@link httpDownload} call. */
interface Run {
  url: URL;
  cfg: Settings;
  options: HttpDownloadOptions;
  /** Aborted by the caller's signal or the deadline. */
  signal: AbortSignal;
  stopped: 'aborted' | 'deadline' | undefined;
  /** performance.now() of the deadline. */
  deadlineAt: number;
}

async function download(run: Run): Promise<HttpDownloadResult> {
  const { url, cfg, options, signal } = run;
  const { dest, size, sha256 } = options;
  const log: Logger = { ...silentLogger, ...options.logger };

  let partBytes = 0;
  let fetchedBytes = 0;
  const deadlineError = (cause: unknown, last?: TransferError): TransferError => {
    const where = `${partBytes} of ${size} bytes in the part (${fetchedBytes} received by this call)`;
    return new TransferError(
      'TRANSFER_TIMEOUT',
      last === undefined
        ? `download of ${url.href} passed its deadline of ${cfg.deadlineMs} ms with ${where}; the partial file is kept for a resume`
        : `download of ${url.href} gave up: the next retry would pass its deadline of ${cfg.deadlineMs} ms, after ${last.message}; ${where}, kept for a resume`,
      { cause },
    );
  };
  /** What a failure means, the caller's abort and the deadline first: they make every operation in flight fail somehow. */
  const classify = (err: unknown): TransferError => {
    if (run.stopped === 'aborted') return err instanceof TransferError && err.code === 'TRANSFER_ABORTED' ? err : abortError(url.href, err);
    if (run.stopped === 'deadline') return deadlineError(err);
    if (err instanceof TransferError) return err;
    if (isCertificateError(err)) {
      // A certificate that does not verify will not verify on the next try either: no retries.
      return new TransferError('TRANSFER_TLS', `download of ${url.href} refused: the server's certificate did not verify (${(err as Error).message}); trust its CA with broker.ca`, { cause: err });
    }
    return new TransferError('TRANSFER_NETWORK', `download of ${url.href} failed: ${(err as Error).message}`, { cause: err });
  };

  try {
    if ((await sizeOf(dest)) === size && (await sha256File(dest, signal)).sha256 === sha256) {
      return { path: dest, size, sha256, resumedFrom: size, fetchedBytes: 0, requests: 0 };
    }
  } catch (err) {
    throw classify(err);
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
  partBytes = have;
  const resumedFrom = have;
  let resumed = have > 0;
  let requests = 0;

  const fetchRest = async (): Promise<void> => {
    // Loops only to restart from zero when the server cannot continue the part (416, a changed
    // validator, a Content-Range that does not fit).
    for (let restarts = 0; ; restarts++) {
      const from = (await sizeOf(part)) ?? 0;
      partBytes = from;
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
      const { res, body, url: finalUrl } = await get(url, options.headers ?? {}, range, options, cfg, signal);
      const status = res.statusCode ?? 0;
      const restart = async (why: string): Promise<void> => {
        body.discard();
        if (restarts >= 2) throw new TransferError('TRANSFER_HTTP_STATUS', `${finalUrl.href} cannot serve ${why}`, { status });
        log.info(`download ${url.href}: ${why}; starting over`);
        await rm(part, { force: true });
        partBytes = 0;
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
        throw new TransferError('TRANSFER_HTTP_STATUS', `${finalUrl.href} answered ${status} ${res.statusMessage ?? ''}`.trim(), {
          status,
          retryAfterMs: retryAfterMs(res),
        });
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
      partBytes = pos;
      try {
        options.onProgress?.({ bytes: pos, total: size });
        try {
          await body.drain(async (chunk) => {
            if (pos + chunk.length > size) await tooLarge(pos + chunk.length);
            await fh.write(chunk, 0, chunk.length, pos);
            pos += chunk.length;
            partBytes = pos;
            fetchedBytes += chunk.length;
            options.onProgress?.({ bytes: pos, total: size });
          });
        } catch (err) {
          // An abort or the deadline is named by classify; a TransferError already says what happened.
          if (err instanceof TransferError || run.stopped !== undefined) throw err;
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
  let retries = 0;
  // The retry window opens at the first failure after the part last grew; the backoff restarts with it.
  let windowStart: number | undefined;
  let failures = 0;
  for (;;) {
    const fetchedBefore = fetchedBytes;
    try {
      await fetchRest();
      const got = await sha256File(part, signal);
      if (got.size !== size || got.sha256 !== sha256) {
        await rm(part, { force: true });
        partBytes = 0;
        if (resumed && !restartedFresh) {
          // The earlier part was stale or damaged: one full download decides.
          log.warn(`download ${url.href}: the resumed file did not match its SHA-256; downloading it whole`);
          restartedFresh = true;
          resumed = false;
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
      const e = classify(err);
      if (run.stopped !== undefined || !retryable(e)) throw e;
      const now = performance.now();
      if (fetchedBytes > fetchedBefore) {
        windowStart = undefined;
        failures = 0;
      }
      windowStart ??= now;
      const windowLeft = windowStart + cfg.retryWindowMs - now;
      if (windowLeft <= 0 || (options.retries !== undefined && retries >= options.retries)) {
        if (retries === 0) throw e;
        throw new TransferError(e.code, `${e.message} (gave up after ${retries} retries over ${Math.round(now - windowStart)} ms)`, { status: e.status, cause: e });
      }
      const backoff = Math.min(cfg.retryMaxDelayMs, cfg.retryDelayMs * 2 ** failures);
      // Jitter keeps a fleet that lost the same server from coming back in step.
      let delay = backoff / 2 + cfg.random() * (backoff / 2);
      delay = Math.round(Math.min(Math.max(delay, e.retryAfterMs ?? 0), windowLeft));
      if (now + delay >= run.deadlineAt) throw deadlineError(e, e);
      failures++;
      retries++;
      log.warn(`download ${url.href}: ${e.message}; retry ${retries} in ${delay} ms`);
      try {
        await sleep(delay, signal);
      } catch (stopped) {
        throw classify(stopped);
      }
      resumed = ((await sizeOf(part)) ?? 0) > 0;
    }
  }
}
