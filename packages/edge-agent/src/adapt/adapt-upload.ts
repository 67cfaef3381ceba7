import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Logger } from '@kd-edge/core';
import { sha256File } from '../transfer/http-download.js';
import { TransferError } from '../transfer/transfer-error.js';

/** Content type of an uploaded package. */
export const PACKAGE_CONTENT_TYPE = 'application/x-tar';
/** The request header carrying the tar's SHA-256 (lower-case hex), checked by the fleet before it reads the package. */
export const SHA256_HEADER = 'x-kd-sha256';

/** Options of {@link uploadPackage}. */
export interface UploadPackageOptions {
  /** Aborting stops the upload with TRANSFER_ABORTED (no retry). */
  signal?: AbortSignal;
  /** Retries after the first attempt, on network errors, timeouts and 5xx/408/429 answers (default 4; 0: none). A 4xx is never retried. */
  retries?: number;
  /** Socket idle time that fails an attempt with TRANSFER_TIMEOUT (default 30 000; 0: none). */
  timeoutMs?: number;
  /** PEM file of the certificate authorities to trust for https, in place of the system's (the agent's `broker.ca`, say). */
  caFile?: string;
  /** Delay before the first retry, doubled after each one up to `retryMaxDelayMs` (default 1000). */
  retryDelayMs?: number;
  /** Longest delay between retries (default 30 000). */
  retryMaxDelayMs?: number;
  /** Returns [0, 1): each delay is drawn from [delay/2, delay) (default Math.random; tests fix it). */
  random?: () => number;
  logger?: Partial<Logger>;
}

/** What {@link uploadPackage} did. */
export interface UploadPackageResult {
  /** SHA-256 of the tar as sent. */
  sha256: string;
  /** Bytes sent. */
  size: number;
  /** The server's final status (2xx). */
  status: number;
  /** The server's answer, parsed when it is JSON (the fleet answers `{name, version, sha256}`), else undefined. */
  body: unknown;
  /** Requests made, the successful one included. */
  attempts: number;
}

/** Most bytes of an answer kept (its message is all that is read). */
const MAX_ANSWER_BYTES = 64 * 1024;

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

// The upload URL's last segment is a one-time credential: it never goes into a message or a log line.
function redact(url: URL): string {
  const parts = url.pathname.split('/');
  if (parts.length > 1 && parts[parts.length - 1] !== '') parts[parts.length - 1] = '…';
  return `${url.origin}${parts.join('/')}`;
}

/** `{error: {code, message}}` (kd-fleet's error body) or plain text, cut short, for an error message. */
function answerMessage(text: string): string {
  try {
    const json = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const e = json?.error;
    if (e !== undefined && typeof e.message === 'string') return typeof e.code === 'string' ? `${e.code}: ${e.message}` : e.message;
  } catch {
    // not JSON: the text itself
  }
  const t = text.trim();
  return t.length > 500 ? `${t.slice(0, 500)}…` : t || '(no message)';
}

function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

interface Attempt {
  status: number;
  text: string;
}

/**
 * Upload a package `.tar` (an adapted package the device signed) to `url` with one streamed `PUT`: `content-length`,
 * `content-type: application/x-tar` and `x-kd-sha256` (hashed before the first byte is sent). Network errors,
 * timeouts and 5xx/408/429 answers are retried with exponential backoff (with jitter) up to `retries` times; a 4xx
 * or a redirect is never retried and fails with TransferError 'TRANSFER_HTTP_STATUS' naming the status and the
 * server's message; a certificate that does not verify fails with 'TRANSFER_TLS', an exhausted network failure with
 * 'TRANSFER_NETWORK' or 'TRANSFER_TIMEOUT', an abort with 'TRANSFER_ABORTED'. The URL's last segment (kd-fleet's
 * one-time token) is left out of every message.
 * @example
 * const { sha256, size } = await uploadPackage('/data/adapt/job-1/package.tar', cmd.url, { signal, logger });
 */
export async function uploadPackage(tarPath: string, url: string, options: UploadPackageOptions = {}): Promise<UploadPackageResult> {
  if (typeof tarPath !== 'string' || tarPath === '') throw new TypeError('tarPath must be the path of a package .tar');
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new TypeError(`url must be an http:// or https:// URL, got ${JSON.stringify(String(url).slice(0, 80))}`);
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new TypeError(`url must be an http:// or https:// URL, got ${target.protocol}`);
  const retries = options.retries ?? 4;
  if (!Number.isSafeInteger(retries) || retries < 0) throw new RangeError(`options.retries must be an integer >= 0, got ${String(retries)}`);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const baseDelay = options.retryDelayMs ?? 1000;
  const maxDelay = options.retryMaxDelayMs ?? 30_000;
  const random = options.random ?? Math.random;
  const log = options.logger ?? {};
  const where = redact(target);

  const st = await stat(tarPath);
  if (!st.isFile()) throw new TypeError(`tarPath ${tarPath} is not a file`);
  const { sha256, size } = await sha256File(tarPath);
  const ca = options.caFile === undefined ? undefined : await readFile(options.caFile);

  const attempt = (): Promise<Attempt> =>
    new Promise<Attempt>((resolve, reject) => {
      const headers = { 'content-length': String(size), 'content-type': PACKAGE_CONTENT_TYPE, [SHA256_HEADER]: sha256 };
      const request = target.protocol === 'https:' ? https.request : http.request;
      const req = request(target, { method: 'PUT', headers, signal: options.signal, ...(ca !== undefined ? { ca } : {}) });
      const body = createReadStream(tarPath);
      if (timeoutMs > 0) req.setTimeout(timeoutMs, () => req.destroy(new TransferError('TRANSFER_TIMEOUT', `upload to ${where}: no progress for ${timeoutMs} ms`)));
      let answered: { status: number; chunks: Buffer[] } | undefined;
      req.on('error', (err) => {
        body.destroy();
        // A server that refuses early closes the connection while the body is still going out: its answer counts, not the reset.
        if (answered !== undefined && answered.status >= 300) resolve({ status: answered.status, text: Buffer.concat(answered.chunks).toString('utf8') });
        else reject(err);
      });
      body.on('error', (err) => req.destroy(err));
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        answered = { status: res.statusCode ?? 0, chunks };
        let kept = 0;
        res.on('data', (c: Buffer) => {
          if (kept < MAX_ANSWER_BYTES) chunks.push(c);
          kept += c.length;
        });
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8').slice(0, MAX_ANSWER_BYTES) });
          if (!req.writableFinished) req.destroy();
        });
        res.on('error', (err) => ((res.statusCode ?? 0) >= 300 ? resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }) : reject(err)));
        // A refusal can come before the whole body is sent: stop sending it.
        if ((res.statusCode ?? 0) >= 300) body.unpipe(req);
      });
      body.pipe(req);
    });

  const classify = (err: unknown): { error: TransferError; retry: boolean } => {
    if (err instanceof TransferError) return { error: err, retry: err.code === 'TRANSFER_TIMEOUT' };
    if (options.signal?.aborted) return { error: new TransferError('TRANSFER_ABORTED', `upload to ${where} aborted`, { cause: err }), retry: false };
    const code = (err as NodeJS.ErrnoException)?.code;
    if (typeof code === 'string' && (code.startsWith('ERR_TLS') || code.includes('CERT') || code === 'HOSTNAME_MISMATCH' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')) {
      return { error: new TransferError('TRANSFER_TLS', `upload to ${where} refused: the server's certificate did not verify (${(err as Error).message})`, { cause: err }), retry: false };
    }
    if (typeof code === 'string' && code.startsWith('ENOENT')) throw err; // the tar went away: not a transfer problem
    const retry = code === undefined || NETWORK_CODES.has(code) || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'UND_ERR_SOCKET';
    return { error: new TransferError('TRANSFER_NETWORK', `upload to ${where} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err }), retry };
  };

  let last: TransferError | undefined;
  for (let i = 0; i <= retries; i++) {
    if (i > 0) {
      const delay = Math.min(maxDelay, baseDelay * 2 ** (i - 1));
      const wait = delay / 2 + random() * (delay / 2);
      log.warn?.(`upload to ${where}: ${last!.message}; retry ${i}/${retries} in ${Math.round(wait)} ms`);
      try {
        await sleep(wait, options.signal);
      } catch (err) {
        throw new TransferError('TRANSFER_ABORTED', `upload to ${where} aborted`, { cause: err });
      }
    }
    let answer: Attempt;
    try {
      answer = await attempt();
    } catch (err) {
      const { error, retry } = classify(err);
      if (!retry) throw error;
      last = error;
      continue;
    }
    if (answer.status >= 200 && answer.status < 300) {
      let body: unknown;
      try {
        body = JSON.parse(answer.text);
      } catch {
        body = undefined;
      }
      log.info?.(`upload to ${where}: ${size} bytes (sha256 ${sha256.slice(0, 12)}) accepted with ${answer.status}`);
      return { sha256, size, status: answer.status, body, attempts: i + 1 };
    }
    const error = new TransferError('TRANSFER_HTTP_STATUS', `upload to ${where} refused with HTTP ${answer.status}: ${answerMessage(answer.text)}`, { status: answer.status });
    if (!isRetryableStatus(answer.status)) throw error;
    last = error;
  }
  throw last!;
}
