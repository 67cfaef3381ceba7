import { silentLogger, type Logger } from '@kd-edge/core';
import { EventEmitter } from 'node:events';
import { SerialPort } from 'serialport';

/** Options of {@link SerialSink}. */
export interface SerialSinkOptions {
  /** Device path, e.g. `/dev/ttyUSB0` or `/dev/ttyTHS1`. */
  path: string;
  /** Default 115200. */
  baudRate?: number;
  /** Lines held while the port is closed or busy; beyond this the oldest are dropped (default 64). */
  maxPending?: number;
  /** First delay before reopening a port that failed (default 250 ms); doubles per failure. */
  retryInitialMs?: number;
  /** Longest delay between reopen attempts (default 5000 ms). */
  retryMaxMs?: number;
  logger?: Logger;
}

/** Where a {@link SerialSink} is: not started, opening, open, waiting to retry, or closed for good. */
export type SerialSinkState = 'idle' | 'opening' | 'open' | 'waiting' | 'closed';

/** Counters of a {@link SerialSink}. */
export interface SerialSinkStats {
  /** Lines written to the port. */
  written: number;
  /** Lines dropped: queue overflow, unserialisable values, or still pending at close. */
  dropped: number;
  /** Successful opens. */
  opens: number;
  /** Lines waiting now. */
  pending: number;
}

/** Events of a {@link SerialSink}; none is named 'error', so an unheard failure never throws. */
export interface SerialSinkEvents {
  open: [{ path: string }];
  /** The open port failed or vanished (USB unplugged, EIO); reopening follows. */
  disconnect: [{ path: string; error: Error | undefined }];
  /** Opening failed; the next attempt is in `delayMs`. */
  retry: [{ path: string; attempt: number; delayMs: number; error: Error }];
  dropped: [{ count: number; reason: 'overflow' | 'unserialisable' | 'closed' }];
}

/** How long close() waits for the line being written. */
const CLOSE_WAIT_MS = 1000;

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * Writes one NDJSON line per message to a serial port (a PLC, a microcontroller, a radio). A port
 * that is missing, fails or disappears never stops the caller: lines wait in a bounded queue and
 * the port is reopened with exponential backoff, every change reported as an event.
 * @example
 * const sink = new SerialSink({ path: '/dev/ttyUSB0', baudRate: 115200 });
 * sink.on('disconnect', ({ error }) => log.warn(`serial: ${error?.message}`));
 * sink.start();
 * sink.write({ type: 'detections', detections });
 */
export class SerialSink extends EventEmitter<SerialSinkEvents> {
  readonly path: string;
  readonly baudRate: number;
  readonly #maxPending: number;
  readonly #retryInitialMs: number;
  readonly #retryMaxMs: number;
  readonly #log: Logger;
  readonly #queue: string[] = [];
  #state: SerialSinkState = 'idle';
  #port: SerialPort | undefined;
  /** The line being written and the port it went to; a port that fails gives it back to the queue. */
  #inFlight: { port: SerialPort; line: string } | undefined;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #written = 0;
  #dropped = 0;
  #opens = 0;
  #idle: (() => void) | undefined;

  constructor(options: SerialSinkOptions) {
    super();
    if (typeof options?.path !== 'string' || options.path === '') throw new TypeError('path must be a non-empty string');
    this.path = options.path;
    this.baudRate = options.baudRate ?? 115200;
    if (!Number.isInteger(this.baudRate) || this.baudRate <= 0) throw new RangeError(`baudRate must be a positive integer, got ${options.baudRate}`);
    this.#maxPending = options.maxPending ?? 64;
    if (!Number.isInteger(this.#maxPending) || this.#maxPending < 1) throw new RangeError(`maxPending must be an integer >= 1, got ${options.maxPending}`);
    this.#retryInitialMs = options.retryInitialMs ?? 250;
    this.#retryMaxMs = options.retryMaxMs ?? 5000;
    if (!(this.#retryInitialMs > 0) || !(this.#retryMaxMs >= this.#retryInitialMs)) {
      throw new RangeError(`retryInitialMs must be > 0 and retryMaxMs >= retryInitialMs, got ${this.#retryInitialMs} and ${this.#retryMaxMs}`);
    }
    this.#log = options.logger ?? silentLogger;
  }

  get state(): SerialSinkState {
    return this.#state;
  }

  get stats(): SerialSinkStats {
    return { written: this.#written, dropped: this.#dropped, opens: this.#opens, pending: this.#queue.length };
  }

  /** Starts opening the port (retrying until it opens); does nothing once started. */
  start(): void {
    if (this.#state !== 'idle') return;
    this.#open();
  }

  /**
   * Queues one line: a string (a newline is added) or a value written as JSON. Returns false when the
   * line was refused (sink closed, value not serialisable); never throws.
   */
  write(message: unknown): boolean {
    if (this.#state === 'closed') return false;
    let line: string;
    try {
      line = typeof message === 'string' ? message : JSON.stringify(message);
      if (typeof line !== 'string') throw new TypeError('not representable as JSON');
    } catch (e) {
      this.#drop(1, 'unserialisable');
      this.#log.warn(`serial ${this.path}: dropped a message that is not JSON: ${toError(e).message}`);
      return false;
    }
    // NDJSON: one message per line, whatever the string held.
    this.#queue.push(`${line.replace(/\r?\n/g, ' ')}\n`);
    if (this.#queue.length > this.#maxPending) {
      this.#queue.shift();
      this.#drop(1, 'overflow');
    }
    this.#pump();
    return true;
  }

  /** Stops retrying, lets the line being written finish, closes the port and drops what is still queued. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#timer);
    if (this.#inFlight !== undefined) {
      // Bounded: a port that never answers must not hang the agent's shutdown.
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((r) => {
        this.#idle = r;
        timer = setTimeout(r, CLOSE_WAIT_MS);
      });
      clearTimeout(timer);
      const stuck = this.#inFlight;
      if (stuck !== undefined) this.#settleWrite(stuck, true);
    }
    if (this.#queue.length > 0) this.#drop(this.#queue.splice(0).length, 'closed');
    const port = this.#port;
    this.#port = undefined;
    if (port?.isOpen) await new Promise<void>((r) => port.close(() => r()));
  }

  #drop(count: number, reason: 'overflow' | 'unserialisable' | 'closed'): void {
    this.#dropped += count;
    this.emit('dropped', { count, reason });
  }

  #open(): void {
    if (this.#state === 'closed') return;
    this.#state = 'opening';
    const port = new SerialPort({ path: this.path, baudRate: this.baudRate, autoOpen: false });
    this.#port = port;
    // serialport reports failures as 'error' events; without a listener they would crash the process.
    port.on('error', (e) => this.#failed(port, e));
    port.on('close', (e?: Error | null) => this.#failed(port, e ?? undefined));
    // Keep reading: input is discarded, and a read error is how an idle port's disappearance shows.
    port.on('data', () => {});
    port.open((err) => {
      if (this.#port !== port) return;
      if (this.#state === 'closed') {
        if (!err) port.close();
        return;
      }
      if (err) {
        this.#port = undefined;
        this.#scheduleRetry(err);
        return;
      }
      this.#state = 'open';
      this.#attempt = 0;
      this.#opens++;
      this.#log.info(`serial ${this.path}: open at ${this.baudRate} baud`);
      this.emit('open', { path: this.path });
      this.#pump();
    });
  }

  /** A port that was open (or opening) failed; forget it and reopen later. Reported once per port. */
  #failed(port: SerialPort, error: Error | undefined): void {
    if (this.#port !== port || this.#state === 'closed') return;
    const wasOpen = this.#state === 'open';
    this.#port = undefined;
    // A write the dying port may never answer: take its line back, so the next port is not blocked behind it.
    const inFlight = this.#inFlight;
    if (inFlight?.port === port) this.#settleWrite(inFlight, true);
    if (port.isOpen) port.close(() => {});
    if (wasOpen) {
      this.#log.warn(`serial ${this.path}: lost (${error?.message ?? 'closed'})`);
      this.emit('disconnect', { path: this.path, error });
    }
    this.#scheduleRetry(error ?? new Error('port closed'));
  }

  #scheduleRetry(error: Error): void {
    if (this.#state === 'closed') return;
    this.#state = 'waiting';
    this.#attempt++;
    const delayMs = Math.min(this.#retryMaxMs, this.#retryInitialMs * 2 ** Math.min(this.#attempt - 1, 30));
    this.#log.debug(`serial ${this.path}: cannot open (${error.message}); retry ${this.#attempt} in ${delayMs} ms`);
    this.emit('retry', { path: this.path, attempt: this.#attempt, delayMs, error });
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#open(), delayMs);
    // Retrying must not keep an otherwise finished process alive.
    this.#timer.unref();
  }

  /** Writes the queue one line at a time, so that the queue, not the stream's buffer, holds the backlog. */
  #pump(): void {
    const port = this.#port;
    if (this.#inFlight !== undefined || this.#state !== 'open' || port === undefined) return;
    const line = this.#queue.shift();
    if (line === undefined) return;
    const write = { port, line };
    this.#inFlight = write;
    port.write(line, (err) => {
      // Late answers from a port already given up on were settled then.
      if (this.#inFlight !== write) return;
      this.#settleWrite(write, err !== null && err !== undefined);
      if (err) this.#failed(port, err);
      this.#pump();
    });
  }

  /** Ends the in-flight write: counted when it went out, back at the head of the queue when it failed. */
  #settleWrite(write: { port: SerialPort; line: string }, failed: boolean): void {
    this.#inFlight = undefined;
    if (!failed) this.#written++;
    else if (this.#state === 'closed') this.#drop(1, 'closed');
    else if (this.#queue.length < this.#maxPending) this.#queue.unshift(write.line);
    else this.#drop(1, 'overflow');
    if (this.#idle) {
      this.#idle();
      this.#idle = undefined;
    }
  }
}
