import type { IncomingMessage, ServerResponse } from 'node:http';
import { silentLogger, type Logger } from '@kd-edge/core/util';
import type { AdaptJobInfo } from '../adapt/adapt-job.js';
import type { AdaptJobStore } from '../adapt/adapt-job-store.js';
import { benchSummary, type BenchRecord, type BenchSummary } from '../devices/device-record.js';
import type { DeviceChange, DeviceChangeKind, DeviceRegistry } from '../devices/device-registry.js';
import type { RolloutEngine } from '../rollout/rollout-engine.js';
import type { ExecutionInfo, RolloutInfo, WaveInfo } from '../rollout/rollout-types.js';
import { rolloutWithWarnings, type RolloutWarningStore } from '../rollout/rollout-warnings.js';

/** Options of {@link LiveEvents}. */
export interface LiveEventsOptions {
  /** Interval of the `: ping` comment that keeps proxies and browsers from closing an idle stream (default 15 s). */
  heartbeatMs?: number;
  /** A device's changes within this window are sent as one `device` event (default 250 ms). */
  coalesceMs?: number;
  /** A client with more than this many bytes unsent is dropped (default 1 MiB); it may reconnect and reload. */
  maxBufferBytes?: number;
  /** Reconnection delay the browser is told (`retry:`), ms (default 2000). */
  retryMs?: number;
  now?: () => number;
  logger?: Logger;
}

/** The event sources of the stream (a FleetContext is one). */
export interface LiveEventSources {
  devices: DeviceRegistry;
  rollouts: RolloutEngine;
  /** Adaptation jobs: each new latest state is an `adapt` event (not coalesced, so a client sees every stage in order). */
  adaptJobs?: AdaptJobStore;
  /**
   * The warnings found when each rollout started: every `rollout` event carries the rollout's, and their record (just
   * after the rollout's first event) is a `rollout` event of its own. Absent: `warnings` is always [].
   */
  rolloutWarnings?: RolloutWarningStore;
}

/** The payload of a `bench` event: the device and its report's figures. */
export interface LiveBenchEvent extends BenchSummary {
  deviceId: string;
}

/** The payload of a `device` event: the last change in the window, every kind seen in it, and the device as it is now. */
export interface LiveDeviceEvent extends DeviceChange {
  kinds: DeviceChangeKind[];
}

/** Counters of a {@link LiveEvents}. */
export interface LiveEventsStats {
  clients: number;
  /** Events written (per event, not per client). */
  events: number;
  /** Device changes folded into a later `device` event. */
  coalesced: number;
  /** Clients dropped for not keeping up. */
  dropped: number;
}

interface Pending {
  change: DeviceChange;
  kinds: DeviceChangeKind[];
}

/**
 * The dashboard's live feed (`GET /api/events`, Server-Sent Events): device changes, bench reports,
 * rollouts (with their warnings), waves, executions and adaptation job states fanned out to every connected client as they happen. Each event is
 * serialised once; a device's changes are coalesced to at most one `device` event per `coalesceMs` (the
 * first at once, the latest at the end of the window), so a thousand devices reporting together cost a
 * thousand events, not ten thousand; a client that stops reading is dropped once its unsent bytes pass
 * `maxBufferBytes`. Listeners are attached while at least one client is connected.
 * @example
 * const live = new LiveEvents(ctx);
 * server.on('request', (req, res) => req.url === '/api/events' && live.handle(req, res));
 */
export class LiveEvents {
  readonly #sources: LiveEventSources;
  readonly #o: Required<Omit<LiveEventsOptions, 'logger' | 'now'>> & { now: () => number; logger: Logger };
  readonly #clients = new Set<ServerResponse>();
  readonly #stats = { events: 0, coalesced: 0, dropped: 0 };
  /** When each device's last `device` event went out. */
  readonly #lastSent = new Map<string, number>();
  readonly #pending = new Map<string, Pending>();
  #flushTimer: NodeJS.Timeout | undefined;
  #flushAt = Infinity;
  #heartbeat: NodeJS.Timeout | undefined;
  #attached = false;
  #closed = false;

  constructor(sources: LiveEventSources, options: LiveEventsOptions = {}) {
    if (typeof sources !== 'object' || sources === null || sources.devices === undefined || sources.rollouts === undefined) {
      throw new TypeError('sources must hold devices (a DeviceRegistry) and rollouts (a RolloutEngine)');
    }
    this.#sources = sources;
    this.#o = {
      heartbeatMs: positive(options.heartbeatMs, 15_000, 'options.heartbeatMs'),
      coalesceMs: positive(options.coalesceMs, 250, 'options.coalesceMs', true),
      maxBufferBytes: positive(options.maxBufferBytes, 1024 * 1024, 'options.maxBufferBytes'),
      retryMs: positive(options.retryMs, 2000, 'options.retryMs'),
      now: options.now ?? Date.now,
      logger: options.logger ?? silentLogger,
    };
  }

  /** Connected clients. */
  get clientCount(): number {
    return this.#clients.size;
  }

  /** A snapshot of the counters. */
  stats(): LiveEventsStats {
    return { clients: this.#clients.size, ...this.#stats };
  }

  /** Take a request as a new event-stream client: headers, the retry hint, then events until either side closes. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.#closed) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5' }).end('shutting down\n');
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store, no-transform',
      connection: 'keep-alive',
      // nginx and friends would otherwise hold events back in their buffers.
      'x-accel-buffering': 'no',
    });
    res.write(`retry: ${this.#o.retryMs}\n: connected\n\n`);
    // An idle stream must not be cut by the server's own socket timeout.
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    this.#clients.add(res);
    const gone = (): void => this.#remove(res);
    res.once('close', gone);
    req.once('close', gone);
    if (!this.#attached) this.#attach();
  }

  /** End every stream and stop listening; later requests get 503. */
  close(): void {
    this.#closed = true;
    for (const res of [...this.#clients]) {
      this.#remove(res);
      res.end();
    }
    this.#detach();
  }

  #attach(): void {
    this.#attached = true;
    const { devices, rollouts } = this.#sources;
    devices.on('change', this.#onChange);
    devices.on('bench', this.#onBench);
    rollouts.on('rollout', this.#onRollout);
    rollouts.on('wave', this.#onWave);
    rollouts.on('execution', this.#onExecution);
    this.#sources.adaptJobs?.on('job', this.#onAdapt);
    this.#sources.rolloutWarnings?.on('set', this.#onWarnings);
    this.#heartbeat = setInterval(() => this.#ping(), this.#o.heartbeatMs);
    this.#heartbeat.unref();
  }

  #detach(): void {
    if (!this.#attached) return;
    this.#attached = false;
    const { devices, rollouts } = this.#sources;
    devices.off('change', this.#onChange);
    devices.off('bench', this.#onBench);
    rollouts.off('rollout', this.#onRollout);
    rollouts.off('wave', this.#onWave);
    rollouts.off('execution', this.#onExecution);
    this.#sources.adaptJobs?.off('job', this.#onAdapt);
    this.#sources.rolloutWarnings?.off('set', this.#onWarnings);
    clearInterval(this.#heartbeat);
    clearTimeout(this.#flushTimer);
    this.#heartbeat = this.#flushTimer = undefined;
    this.#flushAt = Infinity;
    this.#pending.clear();
    this.#lastSent.clear();
  }

  #remove(res: ServerResponse): void {
    if (!this.#clients.delete(res)) return;
    if (this.#clients.size === 0) this.#detach();
  }

  // The emitters call these synchronously from their own work (a message handler, a tick): never throw back into them.
  readonly #onChange = (change: DeviceChange): void => this.#guard(() => this.#deviceChange(change));
  readonly #onBench = (_msg: unknown, r: BenchRecord): void =>
    this.#guard(() => this.#broadcast('bench', { deviceId: r.deviceId, ...benchSummary(r) } satisfies LiveBenchEvent));
  readonly #onRollout = (r: RolloutInfo): void => this.#guard(() => this.#broadcast('rollout', rolloutWithWarnings(r, this.#sources.rolloutWarnings)));
  readonly #onWarnings = (rolloutId: string): void => this.#guard(() => {
    const r = this.#sources.rollouts.get(rolloutId);
    if (r !== undefined) this.#broadcast('rollout', rolloutWithWarnings(r, this.#sources.rolloutWarnings));
  });
  readonly #onWave = (w: WaveInfo): void => this.#guard(() => this.#broadcast('wave', w));
  readonly #onExecution = (e: ExecutionInfo): void => this.#guard(() => this.#broadcast('execution', e));
  readonly #onAdapt = (j: AdaptJobInfo): void => this.#guard(() => this.#broadcast('adapt', j));

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#o.logger.error(`live events: ${(err as Error).message}`);
    }
  }

  #deviceChange(change: DeviceChange): void {
    const id = change.deviceId;
    const now = this.#o.now();
    const pending = this.#pending.get(id);
    if (pending !== undefined) {
      if (!pending.kinds.includes(change.kind)) pending.kinds.push(change.kind);
      pending.change = change;
      this.#stats.coalesced++;
      return;
    }
    const last = this.#lastSent.get(id);
    if (last === undefined || now - last >= this.#o.coalesceMs) {
      this.#sendDevice({ change, kinds: [change.kind] }, now);
      return;
    }
    // Sent recently: hold the latest until the window ends (one timer for all devices).
    this.#pending.set(id, { change, kinds: [change.kind] });
    this.#stats.coalesced++;
    this.#scheduleFlush(last + this.#o.coalesceMs);
  }

  #sendDevice(p: Pending, now: number): void {
    this.#lastSent.set(p.change.deviceId, now);
    const event: LiveDeviceEvent = { kind: p.change.kind, kinds: p.kinds, deviceId: p.change.deviceId, device: p.change.device };
    this.#broadcast('device', event);
  }

  #scheduleFlush(at: number): void {
    if (!this.#attached || at >= this.#flushAt) return;
    clearTimeout(this.#flushTimer);
    this.#flushAt = at;
    this.#flushTimer = setTimeout(() => this.#guard(() => this.#flush()), Math.max(0, at - this.#o.now()));
    this.#flushTimer.unref();
  }

  #flush(): void {
    this.#flushTimer = undefined;
    this.#flushAt = Infinity;
    const now = this.#o.now();
    let next = Infinity;
    for (const [id, p] of this.#pending) {
      const due = (this.#lastSent.get(id) ?? 0) + this.#o.coalesceMs;
      if (due <= now) {
        this.#pending.delete(id);
        this.#sendDevice(p, now);
      } else {
        next = Math.min(next, due);
      }
    }
    // Forget devices whose window is long over, so the map holds only recently active ones.
    for (const [id, t] of this.#lastSent) if (now - t >= this.#o.coalesceMs && !this.#pending.has(id)) this.#lastSent.delete(id);
    if (next !== Infinity) this.#scheduleFlush(next);
  }

  #broadcast(event: string, data: unknown): void {
    if (this.#clients.size === 0) return;
    // JSON.stringify never emits a raw newline, so one `data:` line carries the whole payload.
    this.#write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    this.#stats.events++;
  }

  #ping(): void {
    this.#write(': ping\n\n');
  }

  #write(frame: string): void {
    for (const res of [...this.#clients]) {
      if (res.destroyed || res.writableEnded) {
        this.#remove(res);
        continue;
      }
      res.write(frame);
      if (res.writableLength > this.#o.maxBufferBytes) {
        this.#stats.dropped++;
        this.#o.logger.warn(`live events: dropped a client ${res.req?.socket.remoteAddress ?? ''} with ${res.writableLength} bytes unsent`);
        this.#remove(res);
        res.destroy();
      }
    }
  }
}

function positive(value: number | undefined, fallback: number, name: string, zeroOk = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (value === 0 && !zeroOk)) {
    throw new RangeError(`${name} must be a ${zeroOk ? 'non-negative' : 'positive'} number, got ${String(value)}`);
  }
  return value;
}
