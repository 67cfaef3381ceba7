import { EventEmitter } from 'node:events';
import type Database from 'better-sqlite3';
import {
  ADAPT_STATES, fleetTopics, isReservedDeviceId, parseMessage, parseTopic, ProtocolError, type AdaptMessage, type AdaptState, type FleetTopics,
} from '@kd-edge/core/protocol';
import { silentLogger, type Logger } from '@kd-edge/core/util';
import { FleetError } from '../db/fleet-error.js';
import type { DeviceClient, MalformedMessage } from '../devices/device-registry.js';
import { adaptSnapshot, type AdaptJobInfo, type AdaptJobSnapshot, type AdaptPullInfo, type AdaptPullState } from './adapt-job.js';

/** Events of an {@link AdaptJobStore}: `job` once per stored new latest state, in the order the states arrived. */
export interface AdaptJobStoreEvents {
  job: [AdaptJobInfo];
  malformed: [MalformedMessage];
}

/** Counters of an {@link AdaptJobStore}. */
export interface AdaptJobStoreStats {
  /** States stored (each a new history entry). */
  stored: number;
  /** Messages identical to the job's latest state (a retained message delivered again), not stored twice. */
  duplicates: number;
  /** States older than the job's latest one (a late redelivery): kept in the history, the latest left as it is. */
  late: number;
  /** Messages refused: not JSON, not an adapt message, a device id other than the topic's, a bad topic. */
  malformed: number;
  /** Messages under a service account's name (see core's RESERVED_DEVICE_IDS). */
  reserved: number;
  /** Messages that could not be stored (a database error). */
  failed: number;
}

/** Options of {@link AdaptJobStore}. */
export interface AdaptJobStoreOptions {
  fleet: string;
  /** States kept per job, newest kept (default 2000: a 1000-epoch job's every epoch and stage). */
  historyKeep?: number;
  now?: () => number;
  logger?: Logger;
}

/** Filters of {@link AdaptJobStore.list}. */
export interface AdaptJobFilter {
  deviceId?: string;
  /** Only jobs in one of these states. */
  states?: readonly AdaptState[];
  /** Most jobs returned, most recently updated first (default 500). */
  limit?: number;
}

interface JobRow {
  device_id: string;
  job_id: string;
  ts: number;
  first_seen: number;
  updated_at: number;
  message_json: string;
}

interface StateRow {
  received_at: number;
  message_json: string;
}

/** The latest upload asked for a job (table adapt_uploads, migrations 202 and 203). */
interface UploadRow {
  command_id: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  device_state: string | null;
  error_code: string | null;
  error_message: string | null;
}

/** The package a job's pull stored (packages with its origin). */
interface OriginRow {
  name: string;
  version: string;
  sha256: string;
  key_id: string;
  promoted_at: number | null;
}

/**
 * The fleet's record of on-device adaptation jobs (issue 16), kept from the retained `devices/{id}/adapt` messages
 * agents publish: each job's latest state (keyed by device and job id) and the history of its states, in SQLite
 * (tables of {@link ADAPT_MIGRATIONS}). Every message is checked with core's parser; a malformed one, or one under a
 * service account's name, is counted, logged and emitted as `malformed`, never thrown. A state identical to the
 * job's latest (the broker delivering the retained message again) is not stored twice. Each job also carries its
 * `pull`, read from the fleet's own tables (the uploads asked for and the package they stored); {@link refresh}
 * announces a change of it with the same `job` event.
 * @example
 * const jobs = new AdaptJobStore(db, { fleet: 'lab' });
 * await jobs.attach(client);
 * jobs.on('job', (j) => console.log(j.deviceId, j.jobId, j.state, `${j.epoch}/${j.epochs}`));
 */
export class AdaptJobStore extends EventEmitter<AdaptJobStoreEvents> {
  readonly fleet: string;
  readonly #topics: FleetTopics;
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #keep: number;
  readonly #stats: AdaptJobStoreStats = { stored: 0, duplicates: 0, late: 0, malformed: 0, reserved: 0, failed: 0 };
  readonly #q;
  readonly #listQueries = new Map<string, Database.Statement<unknown[], JobRow>>();
  #client: DeviceClient | undefined;

  constructor(db: Database.Database, options: AdaptJobStoreOptions) {
    super();
    if (typeof db !== 'object' || db === null || typeof db.prepare !== 'function') throw new TypeError('db must be a better-sqlite3 Database');
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    this.#topics = fleetTopics(options.fleet);
    this.fleet = options.fleet;
    this.#db = db;
    this.#now = options.now ?? Date.now;
    this.#log = options.logger ?? silentLogger;
    const keep = options.historyKeep ?? 2000;
    if (!Number.isSafeInteger(keep) || keep < 1) throw new RangeError(`options.historyKeep must be an integer >= 1, got ${String(options.historyKeep)}`);
    this.#keep = keep;
    this.#q = {
      get: db.prepare<[string, string], JobRow>('SELECT device_id, job_id, ts, first_seen, updated_at, message_json FROM adapt_jobs WHERE device_id = ? AND job_id = ?'),
      upsert: db.prepare(
        `INSERT INTO adapt_jobs (device_id, job_id, command_id, state, base_name, base_version, teacher_name, teacher_version, version, epoch, epochs,
           losses_json, holdout_before_map, holdout_after_map, val_before_map, val_after_map, accepted, reasons_json, activated, code, message,
           fps_before, fps_during, peak_rss_mb, ts, first_seen, updated_at, message_json)
         VALUES (@device_id, @job_id, @command_id, @state, @base_name, @base_version, @teacher_name, @teacher_version, @version, @epoch, @epochs,
           @losses_json, @holdout_before_map, @holdout_after_map, @val_before_map, @val_after_map, @accepted, @reasons_json, @activated, @code, @message,
           @fps_before, @fps_during, @peak_rss_mb, @ts, @now, @now, @message_json)
         ON CONFLICT (device_id, job_id) DO UPDATE SET command_id = excluded.command_id, state = excluded.state, base_name = excluded.base_name,
           base_version = excluded.base_version, teacher_name = excluded.teacher_name, teacher_version = excluded.teacher_version,
           version = excluded.version, epoch = excluded.epoch, epochs = excluded.epochs, losses_json = excluded.losses_json,
           holdout_before_map = excluded.holdout_before_map, holdout_after_map = excluded.holdout_after_map, val_before_map = excluded.val_before_map,
           val_after_map = excluded.val_after_map, accepted = excluded.accepted, reasons_json = excluded.reasons_json, activated = excluded.activated,
           code = excluded.code, message = excluded.message, fps_before = excluded.fps_before, fps_during = excluded.fps_during,
           peak_rss_mb = excluded.peak_rss_mb, ts = excluded.ts, updated_at = excluded.updated_at, message_json = excluded.message_json`,
      ),
      insertState: db.prepare('INSERT INTO adapt_job_states (device_id, job_id, ts, received_at, state, message_json) VALUES (?, ?, ?, ?, ?, ?)'),
      trimStates: db.prepare(
        `DELETE FROM adapt_job_states WHERE device_id = @device AND job_id = @job AND id NOT IN
         (SELECT id FROM adapt_job_states WHERE device_id = @device AND job_id = @job ORDER BY ts DESC, id DESC LIMIT @keep)`,
      ),
      history: db.prepare<[string, string], StateRow>(
        'SELECT received_at, message_json FROM adapt_job_states WHERE device_id = ? AND job_id = ? ORDER BY ts, id',
      ),
      upload: db.prepare<[string, string], UploadRow>(
        `SELECT command_id, created_at, expires_at, used_at, device_state, error_code, error_message FROM adapt_uploads
         WHERE device_id = ? AND job_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1`,
      ),
      origin: db.prepare<[string, string], OriginRow>(
        'SELECT name, version, sha256, key_id, promoted_at FROM packages WHERE origin_device = ? AND origin_job = ? ORDER BY pushed_at DESC LIMIT 1',
      ),
    };
  }

  /** Subscribe `client` (connected) to every device's adapt topic and keep the jobs from it; subscribes again on each reconnect. */
  async attach(client: DeviceClient): Promise<void> {
    if (this.#client !== undefined) throw new Error('AdaptJobStore is already attached to a client');
    this.#client = client;
    client.on('message', this.#onMessage);
    try {
      await client.subscribeAsync(this.#topics.filters.adapt, { qos: 1 });
    } catch (err) {
      client.off('message', this.#onMessage);
      this.#client = undefined;
      throw err;
    }
    client.on('connect', this.#onReconnect);
  }

  /** Stop listening to the attached client. */
  async detach(): Promise<void> {
    const client = this.#client;
    if (client === undefined) return;
    this.#client = undefined;
    client.off('message', this.#onMessage);
    client.off('connect', this.#onReconnect);
    await client.unsubscribeAsync(this.#topics.filters.adapt).catch((err: unknown) => this.#log.debug(`adapt: unsubscribe failed: ${(err as Error).message}`));
  }

  readonly #onMessage = (topic: string, payload: Buffer): void => this.handleMessage(topic, payload);

  // As the device registry does: a broker restored from an older snapshot may resume the session without this subscription.
  readonly #onReconnect = (): void => {
    this.#client?.subscribeAsync(this.#topics.filters.adapt, { qos: 1 }).then(
      () => this.#log.debug('adapt: subscribed again after reconnecting'),
      (err: unknown) => this.#log.warn(`adapt: could not subscribe again after reconnecting: ${(err as Error).message}`),
    );
  };

  /** Take one message of the fleet's topics; anything but a device's adapt topic is ignored. Never throws. */
  handleMessage(topic: string, payload: Buffer): void {
    if (typeof topic !== 'string' || !topic.startsWith(`${this.#topics.root}/devices/`) || !topic.endsWith('/adapt')) return;
    try {
      const where = parseTopic(topic, this.fleet);
      if (!('deviceId' in where) || where.kind !== 'adapt') return;
      if (isReservedDeviceId(where.deviceId)) {
        this.#stats.reserved++;
        const error = new FleetError('FLEET_RESERVED_DEVICE_ID', `${where.deviceId} is a service account, not a device; the broker's ACL should not have let this through`);
        this.#log.warn(`adapt: ignored a message on ${topic}: ${error.message}`);
        this.emit('malformed', { topic, error });
        return;
      }
      // An empty retained message clears the device's job topic; the fleet keeps its record.
      if (payload.length === 0) return;
      const msg = parseMessage('adapt', payload);
      if (msg.deviceId !== where.deviceId) {
        throw new ProtocolError('PROTOCOL_SCHEMA', `adapt.deviceId: ${msg.deviceId} does not match the topic's device ${where.deviceId}`, { field: 'deviceId' });
      }
      this.#store(msg);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.#stats.malformed++;
        this.#log.warn(`adapt: ignored a malformed message on ${topic}: ${err.message}`);
        this.emit('malformed', { topic, error: err });
      } else {
        this.#stats.failed++;
        this.#log.error(`adapt: could not store the message on ${topic}: ${(err as Error).message}`);
      }
    }
  }

  #store(msg: AdaptMessage): void {
    const json = JSON.stringify(msg);
    const now = this.#now();
    const ts = Date.parse(msg.ts);
    const outcome = this.#db.transaction((): 'duplicate' | 'late' | 'latest' => {
      const prev = this.#q.get.get(msg.deviceId, msg.jobId);
      if (prev !== undefined && prev.message_json === json) return 'duplicate';
      this.#q.insertState.run(msg.deviceId, msg.jobId, ts, now, msg.state, json);
      this.#q.trimStates.run({ device: msg.deviceId, job: msg.jobId, keep: this.#keep });
      // A redelivered older state joins the history but does not replace a newer latest one.
      if (prev !== undefined && ts < prev.ts) return 'late';
      this.#q.upsert.run(jobColumns(msg, json, ts, now));
      return 'latest';
    })();
    if (outcome === 'duplicate') {
      this.#stats.duplicates++;
      return;
    }
    this.#stats.stored++;
    if (outcome === 'late') {
      this.#stats.late++;
      this.#log.debug(`adapt: ${msg.deviceId}/${msg.jobId}: a state older than the latest (${msg.state} at ${msg.ts}) went to the history only`);
      return;
    }
    const job = this.get(msg.deviceId, msg.jobId)!;
    if (job.final) this.#log.info(`adapt: ${msg.deviceId}/${msg.jobId}: ${msg.state}${msg.version ? ` ${msg.version}` : ''}${msg.code ? ` (${msg.code})` : ''}`);
    this.emit('job', job);
  }

  /** Jobs matching the filter, most recently updated first. */
  list(filter: AdaptJobFilter = {}): AdaptJobInfo[] {
    if (typeof filter !== 'object' || filter === null) throw new TypeError('filter must be an object');
    if (filter.deviceId !== undefined && typeof filter.deviceId !== 'string') throw new TypeError('filter.deviceId must be a string');
    const states = filter.states ?? [];
    const bad = states.find((s) => !(ADAPT_STATES as readonly string[]).includes(s));
    if (bad !== undefined) throw new RangeError(`filter.states: ${JSON.stringify(bad)} is not one of ${ADAPT_STATES.join(', ')}`);
    const limit = filter.limit ?? 500;
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`filter.limit must be an integer >= 1, got ${String(filter.limit)}`);
    const key = `${filter.deviceId !== undefined}|${states.length}`;
    let stmt = this.#listQueries.get(key);
    if (stmt === undefined) {
      const where: string[] = [];
      if (filter.deviceId !== undefined) where.push('device_id = ?');
      if (states.length > 0) where.push(`state IN (${states.map(() => '?').join(', ')})`);
      stmt = this.#db.prepare<unknown[], JobRow>(
        `SELECT device_id, job_id, ts, first_seen, updated_at, message_json FROM adapt_jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY updated_at DESC, device_id, job_id LIMIT ?`,
      );
      this.#listQueries.set(key, stmt);
    }
    const args: unknown[] = [...(filter.deviceId !== undefined ? [filter.deviceId] : []), ...states, limit];
    return stmt.all(...args).map((r) => this.#jobInfo(r));
  }

  /** One job, or undefined. */
  get(deviceId: string, jobId: string): AdaptJobInfo | undefined {
    if (typeof deviceId !== 'string' || typeof jobId !== 'string') throw new TypeError('deviceId and jobId must be strings');
    const row = this.#q.get.get(deviceId, jobId);
    return row === undefined ? undefined : this.#jobInfo(row);
  }

  /**
   * Emit `job` again for a job whose fleet-side record changed (its pull: asked for, accepted, refused, stored,
   * promoted), so that live clients see it as they see a new state. Returns false, emitting nothing, for an unknown job.
   */
  refresh(deviceId: string, jobId: string): boolean {
    const job = this.get(deviceId, jobId);
    if (job === undefined) return false;
    this.emit('job', job);
    return true;
  }

  #jobInfo(r: JobRow): AdaptJobInfo {
    // Stored only after core's parser accepted it.
    return { ...adaptSnapshot(JSON.parse(r.message_json) as AdaptMessage, r.updated_at), firstSeenAt: r.first_seen, pull: this.#pull(r.device_id, r.job_id) };
  }

  /** The job's pull from the fleet's records: the package stored decides `pulled`; else the latest upload asked for. */
  #pull(deviceId: string, jobId: string): AdaptPullInfo | null {
    const up = this.#q.upload.get(deviceId, jobId);
    const pkg = this.#q.origin.get(deviceId, jobId);
    if (up === undefined && pkg === undefined) return null;
    let state: AdaptPullState = 'pulled';
    if (pkg === undefined) {
      const u = up!;
      if (u.error_code !== null) state = 'failed';
      else if (u.used_at === null && this.#now() >= u.expires_at) state = 'expired';
      else if (u.device_state !== null) state = 'uploading';
      else state = 'requested';
    }
    const failed = state === 'failed';
    return {
      state,
      commandId: up?.command_id ?? null,
      requestedAt: up?.created_at ?? null,
      expiresAt: up?.expires_at ?? null,
      code: failed ? up!.error_code : null,
      message: failed ? up!.error_message : null,
      package: pkg === undefined ? null : { name: pkg.name, version: pkg.version, sha256: pkg.sha256, keyId: pkg.key_id, promotedAt: pkg.promoted_at },
    };
  }

  /** Every state of a job the fleet received (at most `historyKeep`, the newest), oldest first; empty for an unknown job. */
  history(deviceId: string, jobId: string): AdaptJobSnapshot[] {
    if (typeof deviceId !== 'string' || typeof jobId !== 'string') throw new TypeError('deviceId and jobId must be strings');
    return this.#q.history.all(deviceId, jobId).map((r) => adaptSnapshot(JSON.parse(r.message_json) as AdaptMessage, r.received_at));
  }

  /** A snapshot of the counters. */
  stats(): AdaptJobStoreStats {
    return { ...this.#stats };
  }
}

const bool = (b: boolean | undefined): number | null => (b === undefined ? null : b ? 1 : 0);

function jobColumns(m: AdaptMessage, json: string, ts: number, now: number): Record<string, unknown> {
  const s = adaptSnapshot(m, now);
  return {
    device_id: m.deviceId, job_id: m.jobId, command_id: m.commandId, state: m.state,
    base_name: m.base.name, base_version: m.base.version, teacher_name: m.teacher?.name ?? null, teacher_version: m.teacher?.version ?? null,
    version: m.version ?? null, epoch: m.epoch ?? null, epochs: m.epochs ?? null, losses_json: m.losses === undefined ? null : JSON.stringify(m.losses),
    holdout_before_map: m.holdout?.before?.map ?? null, holdout_after_map: m.holdout?.after?.map ?? null,
    val_before_map: m.val?.before?.map ?? null, val_after_map: m.val?.after?.map ?? null,
    accepted: bool(m.accepted), reasons_json: m.reasons === undefined ? null : JSON.stringify(m.reasons), activated: bool(m.activated),
    code: m.code ?? null, message: m.message ?? null,
    fps_before: s.serving?.fpsBefore ?? null, fps_during: s.serving?.fpsDuring ?? null, peak_rss_mb: s.peakRssMb,
    ts, now, message_json: json,
  };
}
