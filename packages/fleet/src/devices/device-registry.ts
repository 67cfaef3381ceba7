import { EventEmitter } from 'node:events';
import type Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import {
  fleetTopics, parseMessage, parseTopic, ProtocolError, type ActiveModel, type BenchMessage, type DeviceKeyInfo, type EventMessage, type FleetTopics, type StatusMessage,
  isReservedDeviceId, KEY_ID_RE, RESERVED_DEVICE_IDS,
} from '@kd-edge/core/protocol';
import { silentLogger, type Logger } from '@kd-edge/core/util';
import { FleetError } from '../db/fleet-error.js';
import type { ActiveModelRecord, BenchRecord, DeviceFilter, DeviceKeyRecord, DeviceRecord } from './device-record.js';
import { normaliseTags } from './device-tags.js';

/** What changed about a device. */
export type DeviceChangeKind = 'status' | 'online' | 'offline' | 'removed' | 'tags' | 'event' | 'bench' | 'key';

/** A change to one device, with the device as it is now (undefined only if it vanished meanwhile). */
export interface DeviceChange {
  kind: DeviceChangeKind;
  deviceId: string;
  device: DeviceRecord | undefined;
}

/**
 * A message the registry could not use, and why: `error` is a ProtocolError for a malformed one, a
 * FleetError 'FLEET_RESERVED_DEVICE_ID' for one under a service account's name.
 */
export interface MalformedMessage {
  topic: string;
  error: Error;
}

/** A device reported a public key other than the one the fleet pinned for it; the pinned key stays in force. */
export interface KeyMismatch {
  deviceId: string;
  /** The key in force. */
  pinned: { keyId: string; pinnedAt: number };
  /** The key the device reported. */
  seen: { keyId: string; seenAt: number };
}

/** Events of a {@link DeviceRegistry}; `change` feeds the dashboard's live view. */
export interface DeviceRegistryEvents {
  change: [DeviceChange];
  keyMismatch: [KeyMismatch];
  status: [StatusMessage];
  event: [EventMessage];
  bench: [BenchMessage, BenchRecord];
  malformed: [MalformedMessage];
}

/** Counters of a {@link DeviceRegistry}. */
export interface DeviceRegistryStats {
  status: number;
  removed: number;
  events: number;
  bench: number;
  /** Messages refused: not valid JSON or schema, a device id other than the topic's, a bad topic. */
  malformed: number;
  /**
   * Messages refused because the topic's device id is a service account ({@link RESERVED_DEVICE_IDS}):
   * the broker's ACL should have stopped them, so any here means it let a service user report as a device.
   */
  reserved: number;
  /** Messages that could not be stored (a database error). */
  failed: number;
}

/** Options of {@link DeviceRegistry}. */
export interface DeviceRegistryOptions {
  fleet: string;
  /** Bench reports kept per device, newest first (default 200). */
  benchKeep?: number;
  now?: () => number;
  logger?: Logger;
}

/** The part of an mqtt.js client {@link DeviceRegistry.attach} uses. */
export type DeviceClient = Pick<MqttClient, 'subscribeAsync' | 'unsubscribeAsync' | 'on' | 'off'>;

// Service accounts are left out of every listing, also rows a database from before the check may hold.
// Literal SQL: the names are fixed constants of [a-z-].
const NOT_RESERVED = `d.id NOT IN (${RESERVED_DEVICE_IDS.map((id) => `'${id}'`).join(', ')})`;

interface DeviceRow {
  id: string;
  fleet: string;
  online: number;
  first_seen: number;
  last_seen: number;
  status_json: string | null;
  agent_version: string | null;
  active_name: string | null;
  active_version: string | null;
  active_sha256: string | null;
  last_event_json: string | null;
  last_event_at: number | null;
  removed_at: number | null;
  key_id: string | null;
  key_pem: string | null;
  key_pinned_at: number | null;
  key_mismatch_id: string | null;
  key_mismatch_pem: string | null;
  key_mismatch_at: number | null;
}

/** What a status did to a device's pinned key. */
type KeyOutcome = { kind: 'pinned'; keyId: string } | { kind: 'mismatch'; mismatch: KeyMismatch } | undefined;

// Read as BenchRecord directly: snake_case columns aliased to the record's names.
const BENCH_COLUMNS = `id, device_id AS deviceId, ts, received_at AS receivedAt, command_id AS commandId, name, version, sha256, runtime,
  p50, p95, fps, power_mw AS powerMw, temp_c AS tempC, map50`;

/** The will is the short status: no agent version or hardware, just `online: false`. */
function isShortStatus(s: StatusMessage): boolean {
  return s.online === false && s.agentVersion === undefined && s.hardware === undefined;
}

/**
 * The fleet's device table, kept from what devices publish: retained statuses (an empty retained payload
 * marks the device removed), last wills (offline), events (the latest per device) and bench reports (the
 * last `benchKeep` per device), plus the operator's tags. Malformed messages, and messages under a service
 * account's name ({@link RESERVED_DEVICE_IDS}), are counted, logged and emitted as `malformed`, never
 * thrown; every change is emitted as `change`.
 * @example
 * const devices = new DeviceRegistry(db, { fleet: 'lab' });
 * await devices.attach(client);
 * devices.on('change', ({ deviceId, kind }) => ws.broadcast({ deviceId, kind }));
 */
export class DeviceRegistry extends EventEmitter<DeviceRegistryEvents> {
  readonly fleet: string;
  readonly #db: Database.Database;
  readonly #topics: FleetTopics;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #benchKeep: number;
  readonly #stats: DeviceRegistryStats = { status: 0, removed: 0, events: 0, bench: 0, malformed: 0, reserved: 0, failed: 0 };
  readonly #q;
  readonly #listQueries = new Map<string, Database.Statement<unknown[], DeviceRow>>();
  #client: DeviceClient | undefined;

  constructor(db: Database.Database, options: DeviceRegistryOptions) {
    super();
    if (typeof db !== 'object' || db === null || typeof db.prepare !== 'function') throw new TypeError('db must be a better-sqlite3 Database');
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    this.#topics = fleetTopics(options.fleet);
    this.fleet = options.fleet;
    this.#db = db;
    this.#now = options.now ?? Date.now;
    this.#log = options.logger ?? silentLogger;
    const keep = options.benchKeep ?? 200;
    if (!Number.isSafeInteger(keep) || keep < 1) throw new RangeError(`options.benchKeep must be an integer >= 1, got ${String(options.benchKeep)}`);
    this.#benchKeep = keep;
    this.#q = {
      get: db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE id = ?'),
      insert: db.prepare(
        `INSERT INTO devices (id, fleet, online, first_seen, last_seen, status_json, agent_version, active_name, active_version, active_sha256)
         VALUES (@id, @fleet, @online, @now, @now, @status_json, @agent_version, @active_name, @active_version, @active_sha256)`,
      ),
      updateStatus: db.prepare(
        `UPDATE devices SET online = @online, last_seen = @last_seen, status_json = @status_json, agent_version = @agent_version,
         active_name = @active_name, active_version = @active_version, active_sha256 = @active_sha256, removed_at = NULL, fleet = @fleet WHERE id = @id`,
      ),
      remove: db.prepare('UPDATE devices SET removed_at = ?, online = 0 WHERE id = ? AND removed_at IS NULL'),
      touchNew: db.prepare('INSERT OR IGNORE INTO devices (id, fleet, online, first_seen, last_seen) VALUES (?, ?, 1, ?, ?)'),
      event: db.prepare('UPDATE devices SET last_event_json = ?, last_event_at = ?, last_seen = ? WHERE id = ?'),
      seen: db.prepare('UPDATE devices SET last_seen = ? WHERE id = ?'),
      pinKey: db.prepare(
        `UPDATE devices SET key_id = ?, key_pem = ?, key_pinned_at = ?, key_mismatch_id = NULL, key_mismatch_pem = NULL, key_mismatch_at = NULL
         WHERE id = ?`,
      ),
      keyMismatch: db.prepare('UPDATE devices SET key_mismatch_id = ?, key_mismatch_pem = ?, key_mismatch_at = ? WHERE id = ?'),
      clearMismatch: db.prepare('UPDATE devices SET key_mismatch_id = NULL, key_mismatch_pem = NULL, key_mismatch_at = NULL WHERE id = ?'),
      tagsOf: db.prepare<[string], string>('SELECT tag FROM device_tags WHERE device_id = ? ORDER BY tag').pluck(),
      allTags: db.prepare<[], { device_id: string; tag: string }>('SELECT device_id, tag FROM device_tags ORDER BY tag'),
      clearTags: db.prepare('DELETE FROM device_tags WHERE device_id = ?'),
      addTag: db.prepare('INSERT INTO device_tags (device_id, tag) VALUES (?, ?)'),
      insertBench: db.prepare(
        `INSERT INTO bench_reports (device_id, ts, received_at, command_id, name, version, sha256, runtime, p50, p95, fps, power_mw, temp_c, map50, json)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      trimBench: db.prepare(
        `DELETE FROM bench_reports WHERE device_id = @id AND id NOT IN
         (SELECT id FROM bench_reports WHERE device_id = @id ORDER BY ts DESC, id DESC LIMIT @keep)`,
      ),
      bench: db.prepare<[number], BenchRecord>(`SELECT ${BENCH_COLUMNS} FROM bench_reports WHERE id = ?`),
      history: db.prepare<[string, number], BenchRecord>(`SELECT ${BENCH_COLUMNS} FROM bench_reports WHERE device_id = ? ORDER BY ts DESC, id DESC LIMIT ?`),
      // One index lookup per device (bench_reports_device_ts ends in the rowid, so the ORDER BY is the index's).
      latestAll: db.prepare<[], BenchRecord>(
        `SELECT ${BENCH_COLUMNS} FROM bench_reports WHERE id IN
         (SELECT (SELECT b.id FROM bench_reports b WHERE b.device_id = d.id ORDER BY b.ts DESC, b.id DESC LIMIT 1) FROM devices d)`,
      ),
    };
  }

  /**
   * Subscribe `client` (connected) to the fleet's status, event and bench topics and keep the table from
   * them; subscribes again each time the client reconnects.
   */
  async attach(client: DeviceClient): Promise<void> {
    if (this.#client !== undefined) throw new Error('DeviceRegistry is already attached to a client');
    this.#client = client;
    client.on('message', this.#onMessage);
    try {
      await client.subscribeAsync(this.#filters(), { qos: 1 });
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
    await client.unsubscribeAsync(this.#filters()).catch((err: unknown) => this.#log.debug(`devices: unsubscribe failed: ${(err as Error).message}`));
  }

  #filters(): string[] {
    const f = this.#topics.filters;
    return [f.status, f.events, f.bench];
  }

  readonly #onMessage = (topic: string, payload: Buffer): void => this.handleMessage(topic, payload);

  // Whatever CONNACK's session present says: a broker restored from an older snapshot resumes the session
  // without the subscriptions made since, and mqtt.js subscribes again only when there is no session.
  readonly #onReconnect = (): void => {
    const client = this.#client;
    if (client === undefined) return;
    client.subscribeAsync(this.#filters(), { qos: 1 }).then(
      () => this.#log.debug('devices: subscribed again after reconnecting'),
      // The connection dropped again: the next connect tries again.
      (err: unknown) => this.#log.warn(`devices: could not subscribe again after reconnecting: ${(err as Error).message}`),
    );
  };

  /**
   * Take one message of the fleet's device topics (status, events, bench); other topics are ignored.
   * The embedded broker's publish hook may call this directly. Never throws.
   */
  handleMessage(topic: string, payload: Buffer): void {
    if (typeof topic !== 'string' || !topic.startsWith(`${this.#topics.root}/devices/`)) return;
    try {
      const where = parseTopic(topic, this.fleet);
      if (!('deviceId' in where) || !(where.kind === 'status' || where.kind === 'event' || where.kind === 'bench')) return;
      if (isReservedDeviceId(where.deviceId)) {
        this.#refuseReserved(topic, where.deviceId);
        return;
      }
      if (where.kind === 'status') this.#status(where.deviceId, payload);
      else if (where.kind === 'event') this.#event(where.deviceId, payload);
      else if (where.kind === 'bench') this.#bench(where.deviceId, payload);
    } catch (err) {
      if (err instanceof ProtocolError || err instanceof MismatchError) {
        this.#stats.malformed++;
        this.#log.warn(`devices: ignored a malformed message on ${topic}: ${err.message}`);
        this.emit('malformed', { topic, error: err });
      } else {
        this.#stats.failed++;
        this.#log.error(`devices: could not store the message on ${topic}: ${(err as Error).message}`);
      }
    }
  }

  #refuseReserved(topic: string, deviceId: string): void {
    this.#stats.reserved++;
    const error = new FleetError(
      'FLEET_RESERVED_DEVICE_ID',
      `${deviceId} is a service account, not a device; the broker's ACL should not have let this through (docker/mosquitto/acl)`,
    );
    this.#log.warn(`devices: ignored a message on ${topic}: ${error.message}`);
    this.emit('malformed', { topic, error });
  }

  #status(deviceId: string, payload: Buffer): void {
    if (payload.length === 0) {
      // An empty retained message clears the device's status on the broker: the device was decommissioned.
      if (this.#q.remove.run(this.#now(), deviceId).changes > 0) {
        this.#stats.removed++;
        this.#changed('removed', deviceId);
      }
      return;
    }
    const msg = parseMessage('status', payload);
    if (msg.deviceId !== deviceId) throw new MismatchError(`status.deviceId ${msg.deviceId} does not match the topic's ${deviceId}`);
    const now = this.#now();
    const short = isShortStatus(msg);
    const { before, key } = this.#db.transaction((): { before: DeviceRow | undefined; key: KeyOutcome } => {
      const prev = this.#q.get.get(deviceId);
      let status: StatusMessage = msg;
      if (short && prev?.status_json) {
        // Keep what the device last said about itself (hardware, models) and record that it went offline.
        const { serving: _serving, ...rest } = JSON.parse(prev.status_json) as StatusMessage;
        status = { ...rest, online: false, ts: msg.ts };
      }
      const row = {
        id: deviceId,
        fleet: this.fleet,
        online: msg.online ? 1 : 0,
        status_json: JSON.stringify(status),
        agent_version: status.agentVersion ?? null,
        active_name: status.activeModel?.name ?? null,
        active_version: status.activeModel?.version ?? null,
        active_sha256: status.activeModel?.sha256 ?? null,
      };
      if (prev === undefined) this.#q.insert.run({ ...row, now });
      // The will is sent by the broker, not the device: it does not count as hearing from it.
      else this.#q.updateStatus.run({ ...row, last_seen: short ? prev.last_seen : now });
      return { before: prev, key: msg.deviceKey === undefined ? undefined : this.#pin(deviceId, prev, msg.deviceKey, now) };
    })();
    this.#stats.status++;
    this.emit('status', msg);
    const wasOnline = before !== undefined && before.removed_at === null && before.online === 1;
    this.#changed(msg.online === wasOnline ? 'status' : msg.online ? 'online' : 'offline', deviceId);
    if (key?.kind === 'pinned') {
      this.#log.info(`devices: ${deviceId}: pinned its device key ${key.keyId} (first seen)`);
      this.#changed('key', deviceId);
    } else if (key?.kind === 'mismatch') {
      const m = key.mismatch;
      this.#log.warn(
        `devices: ${deviceId} reports device key ${m.seen.keyId}, not its pinned key ${m.pinned.keyId}; the pinned key stays in force until an operator ` +
          `accepts the new one (kd-fleet devices accept-key ${deviceId} ${m.seen.keyId})`,
      );
      this.emit('keyMismatch', m);
      this.#changed('key', deviceId);
    }
  }

  /**
   * Trust on first use: the first key a device reports is pinned; a different one later is recorded as a mismatch
   * (once per key) and changes nothing else. Runs inside the status's transaction.
   */
  #pin(deviceId: string, prev: DeviceRow | undefined, reported: DeviceKeyInfo, now: number): KeyOutcome {
    if (prev === undefined || prev.key_id === null) {
      this.#q.pinKey.run(reported.keyId, reported.publicKeyPem, now, deviceId);
      return { kind: 'pinned', keyId: reported.keyId };
    }
    if (reported.keyId === prev.key_id || reported.keyId === prev.key_mismatch_id) return undefined;
    this.#q.keyMismatch.run(reported.keyId, reported.publicKeyPem, now, deviceId);
    return { kind: 'mismatch', mismatch: { deviceId, pinned: { keyId: prev.key_id, pinnedAt: prev.key_pinned_at ?? 0 }, seen: { keyId: reported.keyId, seenAt: now } } };
  }

  #event(deviceId: string, payload: Buffer): void {
    const msg = parseMessage('event', payload);
    if (msg.deviceId !== deviceId) throw new MismatchError(`event.deviceId ${msg.deviceId} does not match the topic's ${deviceId}`);
    const now = this.#now();
    this.#db.transaction(() => {
      this.#q.touchNew.run(deviceId, this.fleet, now, now);
      this.#q.event.run(JSON.stringify(msg), now, now, deviceId);
    })();
    this.#stats.events++;
    this.emit('event', msg);
    this.#changed('event', deviceId);
  }

  #bench(deviceId: string, payload: Buffer): void {
    const msg = parseMessage('bench', payload);
    if (msg.deviceId !== deviceId) throw new MismatchError(`bench.deviceId ${msg.deviceId} does not match the topic's ${deviceId}`);
    const now = this.#now();
    const temps = msg.tegrastats ? Object.values(msg.tegrastats.tempC) : [];
    const record = this.#db.transaction(() => {
      this.#q.touchNew.run(deviceId, this.fleet, now, now);
      this.#q.seen.run(now, deviceId);
      const r = this.#q.insertBench.run(
        deviceId, Date.parse(msg.ts), now, msg.commandId ?? null, msg.model.name, msg.model.version, msg.model.sha256, msg.runtime,
        msg.latencyMs.p50, msg.latencyMs.p95, msg.throughputFps, msg.tegrastats?.totalPowerMw ?? null,
        temps.length > 0 ? Math.max(...temps) : null, msg.accuracy?.map50 ?? null, JSON.stringify(msg),
      );
      // Read back before trimming: a late report dated before the kept ones is trimmed at once, yet was received.
      const stored = this.#q.bench.get(Number(r.lastInsertRowid))!;
      this.#q.trimBench.run({ id: deviceId, keep: this.#benchKeep });
      return stored;
    })();
    this.#stats.bench++;
    this.emit('bench', msg, record);
    this.#changed('bench', deviceId);
  }

  #changed(kind: DeviceChangeKind, deviceId: string): void {
    this.emit('change', { kind, deviceId, device: this.get(deviceId, { includeRemoved: true }) });
  }

  /** Devices matching the filter, by id; removed ones only with `includeRemoved`. */
  list(filter: DeviceFilter = {}): DeviceRecord[] {
    if (typeof filter !== 'object' || filter === null) throw new TypeError('filter must be an object');
    if (filter.tag !== undefined && typeof filter.tag !== 'string') throw new TypeError('filter.tag must be a string');
    if (filter.online !== undefined && typeof filter.online !== 'boolean') throw new TypeError('filter.online must be a boolean');
    const key = `${filter.tag !== undefined}|${String(filter.online)}|${filter.includeRemoved === true}`;
    let stmt = this.#listQueries.get(key);
    if (stmt === undefined) {
      const where: string[] = [NOT_RESERVED];
      if (filter.includeRemoved !== true) where.push('d.removed_at IS NULL');
      if (filter.online !== undefined) where.push(`d.online = ${filter.online ? 1 : 0}`);
      if (filter.tag !== undefined) where.push('EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = d.id AND t.tag = ?)');
      stmt = this.#db.prepare<unknown[], DeviceRow>(`SELECT d.* FROM devices d WHERE ${where.join(' AND ')} ORDER BY d.id`);
      this.#listQueries.set(key, stmt);
    }
    const rows = filter.tag !== undefined ? stmt.all(filter.tag) : stmt.all();
    const tags = new Map<string, string[]>();
    for (const t of this.#q.allTags.all()) {
      const list = tags.get(t.device_id);
      if (list === undefined) tags.set(t.device_id, [t.tag]);
      else list.push(t.tag);
    }
    return rows.map((r) => this.#record(r, tags.get(r.id) ?? []));
  }

  /** One device, or undefined (also for a removed one, unless `includeRemoved`, and for a service account's name). */
  get(id: string, options: { includeRemoved?: boolean } = {}): DeviceRecord | undefined {
    if (typeof id !== 'string') throw new TypeError('id must be a device id');
    if (isReservedDeviceId(id)) return undefined;
    const row = this.#q.get.get(id);
    if (row === undefined || (row.removed_at !== null && options.includeRemoved !== true)) return undefined;
    return this.#record(row, this.#q.tagsOf.all(id));
  }

  /** Replace a device's tags (deduplicated, sorted); FleetError 'FLEET_DEVICE_NOT_FOUND' for an unknown device. */
  setTags(id: string, tags: readonly string[]): DeviceRecord {
    if (typeof id !== 'string') throw new TypeError('id must be a device id');
    const clean = normaliseTags(tags);
    this.#db.transaction(() => {
      if (isReservedDeviceId(id) || this.#q.get.get(id) === undefined) throw new FleetError('FLEET_DEVICE_NOT_FOUND', `no device ${JSON.stringify(id)} in fleet ${this.fleet}`);
      this.#q.clearTags.run(id);
      for (const t of clean) this.#q.addTag.run(id, t);
    })();
    this.#changed('tags', id);
    return this.get(id, { includeRemoved: true })!;
  }

  /**
   * An operator's decision on a device's key, named by `keyId` so that a key reported after the operator looked is
   * not accepted unseen: the key of the recorded mismatch becomes the pinned one, or naming the pinned key keeps it
   * and clears the mismatch. FleetError 'FLEET_DEVICE_NOT_FOUND' for an unknown device, 'FLEET_DEVICE_KEY_CONFLICT'
   * for a key id that is neither.
   */
  acceptKey(id: string, keyId: string): DeviceRecord {
    if (typeof id !== 'string') throw new TypeError('id must be a device id');
    if (typeof keyId !== 'string' || !KEY_ID_RE.test(keyId)) throw new TypeError(`keyId must be 16 lower-case hex characters, got ${JSON.stringify(keyId)}`);
    const now = this.#now();
    const previous = this.#db.transaction((): string | null => {
      const row = isReservedDeviceId(id) ? undefined : this.#q.get.get(id);
      if (row === undefined) throw new FleetError('FLEET_DEVICE_NOT_FOUND', `no device ${JSON.stringify(id)} in fleet ${this.fleet}`);
      if (row.key_mismatch_id !== null && row.key_mismatch_pem !== null && keyId === row.key_mismatch_id) {
        this.#q.pinKey.run(row.key_mismatch_id, row.key_mismatch_pem, now, id);
        return row.key_id;
      }
      if (row.key_id !== null && keyId === row.key_id) {
        this.#q.clearMismatch.run(id);
        return row.key_id;
      }
      const known = row.key_id === null
        ? 'has reported no device key yet'
        : `has pinned key ${row.key_id}${row.key_mismatch_id === null ? ' and reported no other' : ` and reported ${row.key_mismatch_id}`}`;
      throw new FleetError('FLEET_DEVICE_KEY_CONFLICT', `device ${id} ${known}; key ${keyId} is neither, so there is nothing to accept`);
    })();
    this.#log.info(previous === keyId ? `devices: ${id}: kept its pinned key ${keyId}; the mismatch is cleared` : `devices: ${id}: an operator accepted key ${keyId} in place of ${previous ?? 'none'}`);
    this.#changed('key', id);
    return this.get(id, { includeRemoved: true })!;
  }

  /** The device's last `limit` bench reports (default 100), oldest first, for a latency chart. */
  latencyHistory(id: string, limit = 100): BenchRecord[] {
    if (typeof id !== 'string') throw new TypeError('id must be a device id');
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit must be an integer >= 1, got ${String(limit)}`);
    return this.#q.history.all(id, limit).reverse();
  }

  /** The device's newest bench report, of `name@version` when given, or undefined. */
  latestBench(id: string, model: { name?: string; version?: string } = {}): BenchRecord | undefined {
    return this.#q.history.all(id, this.#benchKeep)
      .find((r) => (model.name === undefined || r.name === model.name) && (model.version === undefined || r.version === model.version));
  }

  /** Every device's newest bench report, by device id (devices without one are absent). */
  latestBenches(): Map<string, BenchRecord> {
    return new Map(this.#q.latestAll.all().map((r) => [r.deviceId, r]));
  }

  /** A snapshot of the counters. */
  stats(): DeviceRegistryStats {
    return { ...this.#stats };
  }

  #record(r: DeviceRow, tags: string[]): DeviceRecord {
    const status = r.status_json === null ? null : (JSON.parse(r.status_json) as StatusMessage);
    return {
      id: r.id,
      fleet: r.fleet,
      online: r.online === 1,
      firstSeen: r.first_seen,
      lastSeen: r.last_seen,
      agentVersion: r.agent_version,
      activeModel: r.active_name !== null && r.active_version !== null && r.active_sha256 !== null
        ? { name: r.active_name, version: r.active_version, sha256: r.active_sha256, ...servedFields(status, r.active_sha256) }
        : null,
      status,
      tags,
      lastEvent: r.last_event_json === null ? null : (JSON.parse(r.last_event_json) as EventMessage),
      lastEventAt: r.last_event_at,
      removedAt: r.removed_at,
      deviceKey: keyRecord(r),
    };
  }
}

/** What serves the active model, from the status that names it (the same package), each field only when reported. */
function servedFields(status: StatusMessage | null, sha256: string): Omit<ActiveModelRecord, 'name' | 'version' | 'sha256'> {
  const m = status?.activeModel as (ActiveModel & { serving?: unknown }) | null | undefined;
  if (m === null || m === undefined || m.sha256 !== sha256) return {};
  const text = (v: unknown): v is string => typeof v === 'string' && v !== '';
  return {
    ...(text(m.file) ? { file: m.file } : {}),
    ...(text(m.precision) ? { precision: m.precision } : {}),
    ...(text(m.runtime) ? { runtime: m.runtime } : {}),
    ...(text(m.executionProvider) ? { executionProvider: m.executionProvider } : {}),
    ...(text(m.serving) ? { serving: m.serving } : {}),
  };
}

function keyRecord(r: DeviceRow): DeviceKeyRecord | null {
  if (r.key_id === null || r.key_pem === null) return null;
  return {
    keyId: r.key_id,
    publicKeyPem: r.key_pem,
    pinnedAt: r.key_pinned_at ?? 0,
    mismatch: r.key_mismatch_id !== null && r.key_mismatch_pem !== null
      ? { keyId: r.key_mismatch_id, publicKeyPem: r.key_mismatch_pem, seenAt: r.key_mismatch_at ?? 0 }
      : null,
  };
}

/** A message whose device id disagrees with its topic's. */
class MismatchError extends Error {}
