import type Database from 'better-sqlite3';
import { IN_FLIGHT_EXECUTION_STATES, type ExecutionState } from './execution-state.js';
import { ACTIVE_ROLLOUT_STATES, type RolloutState, type WaveState } from './rollout-types.js';

/** A row of `rollouts`. */
export interface RolloutRow {
  id: string;
  package_name: string;
  package_version: string;
  package_sha256: string;
  spec_json: string;
  state: RolloutState;
  created_at: number;
  updated_at: number;
  current_wave: number;
  reason: string | null;
}

/** A row of `rollout_waves`. */
export interface WaveRow {
  rollout_id: string;
  idx: number;
  device_ids_json: string;
  state: WaveState;
  started_at: number | null;
  ended_at: number | null;
  gate_results_json: string | null;
}

/** A row of `executions`. */
export interface ExecutionRow {
  rollout_id: string;
  device_id: string;
  wave: number;
  seq: number;
  state: ExecutionState;
  command_id: string;
  sent_at: number | null;
  updated_at: number;
  code: string | null;
  message: string | null;
  bench_json: string | null;
  device_state: string | null;
  rollback_command_id: string | null;
  rollback_state: 'queued' | 'sent' | 'rolled_back' | 'failed' | null;
  rollback_sent_at: number | null;
  rollback_code: string | null;
}

const quoted = (states: readonly string[]): string => states.map((s) => `'${s}'`).join(', ');
const IN_FLIGHT = quoted(IN_FLIGHT_EXECUTION_STATES);
const ACTIVE = quoted(ACTIVE_ROLLOUT_STATES);

function setClause(fields: object): { sql: string; values: unknown[] } {
  const keys = Object.keys(fields);
  return { sql: keys.map((k) => `${k} = ?`).join(', '), values: keys.map((k) => (fields as Record<string, unknown>)[k]) };
}

/**
 * The rollout engine's SQL, kept in one place. Every write that guards a transition (`markSent`,
 * `queueRollback`…) is a conditional UPDATE, so a racing event or a second engine cannot undo it.
 */
export class RolloutStore {
  readonly db: Database.Database;
  constructor(db: Database.Database) {
    this.db = db;
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  insertRollout(row: RolloutRow): void {
    this.db.prepare(`INSERT INTO rollouts (id, package_name, package_version, package_sha256, spec_json, state, created_at, updated_at, current_wave, reason)
      VALUES (@id, @package_name, @package_version, @package_sha256, @spec_json, @state, @created_at, @updated_at, @current_wave, @reason)`).run(row);
  }

  insertWave(row: WaveRow): void {
    this.db.prepare(`INSERT INTO rollout_waves (rollout_id, idx, device_ids_json, state, started_at, ended_at, gate_results_json)
      VALUES (@rollout_id, @idx, @device_ids_json, @state, @started_at, @ended_at, @gate_results_json)`).run(row);
  }

  insertExecution(row: Pick<ExecutionRow, 'rollout_id' | 'device_id' | 'wave' | 'seq' | 'command_id' | 'updated_at'>): void {
    this.db.prepare(`INSERT INTO executions (rollout_id, device_id, wave, seq, state, command_id, updated_at)
      VALUES (@rollout_id, @device_id, @wave, @seq, 'queued', @command_id, @updated_at)`).run(row);
  }

  rollout(id: string): RolloutRow | undefined {
    return this.db.prepare('SELECT * FROM rollouts WHERE id = ?').get(id) as RolloutRow | undefined;
  }

  rollouts(states?: readonly RolloutState[]): RolloutRow[] {
    const where = states === undefined ? '' : `WHERE state IN (${quoted(states)})`;
    return this.db.prepare(`SELECT * FROM rollouts ${where} ORDER BY created_at, id`).all() as RolloutRow[];
  }

  updateRollout(id: string, fields: Partial<Omit<RolloutRow, 'id'>>): void {
    const set = setClause(fields);
    this.db.prepare(`UPDATE rollouts SET ${set.sql} WHERE id = ?`).run(...set.values, id);
  }

  wave(rolloutId: string, idx: number): WaveRow | undefined {
    return this.db.prepare('SELECT * FROM rollout_waves WHERE rollout_id = ? AND idx = ?').get(rolloutId, idx) as WaveRow | undefined;
  }

  waves(rolloutId: string): WaveRow[] {
    return this.db.prepare('SELECT * FROM rollout_waves WHERE rollout_id = ? ORDER BY idx').all(rolloutId) as WaveRow[];
  }

  waveCount(rolloutId: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM rollout_waves WHERE rollout_id = ?').get(rolloutId) as { n: number }).n;
  }

  updateWave(rolloutId: string, idx: number, fields: Partial<Omit<WaveRow, 'rollout_id' | 'idx'>>): void {
    const set = setClause(fields);
    this.db.prepare(`UPDATE rollout_waves SET ${set.sql} WHERE rollout_id = ? AND idx = ?`).run(...set.values, rolloutId, idx);
  }

  execution(rolloutId: string, deviceId: string): ExecutionRow | undefined {
    return this.db.prepare('SELECT * FROM executions WHERE rollout_id = ? AND device_id = ?').get(rolloutId, deviceId) as ExecutionRow | undefined;
  }

  byCommandId(commandId: string): ExecutionRow | undefined {
    return this.db.prepare('SELECT * FROM executions WHERE command_id = ?').get(commandId) as ExecutionRow | undefined;
  }

  byRollbackCommandId(commandId: string): ExecutionRow | undefined {
    return this.db.prepare('SELECT * FROM executions WHERE rollback_command_id = ?').get(commandId) as ExecutionRow | undefined;
  }

  executions(rolloutId: string, wave?: number): ExecutionRow[] {
    if (wave === undefined) return this.db.prepare('SELECT * FROM executions WHERE rollout_id = ? ORDER BY wave, seq').all(rolloutId) as ExecutionRow[];
    return this.db.prepare('SELECT * FROM executions WHERE rollout_id = ? AND wave = ? ORDER BY seq').all(rolloutId, wave) as ExecutionRow[];
  }

  queued(rolloutId: string, wave: number): ExecutionRow[] {
    return this.db.prepare(`SELECT * FROM executions WHERE rollout_id = ? AND wave = ? AND state = 'queued' ORDER BY seq`).all(rolloutId, wave) as ExecutionRow[];
  }

  /** Commands sent after `since` (ms): the sliding window of the rate limit. */
  sentSince(rolloutId: string, since: number): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM executions WHERE rollout_id = ? AND sent_at > ?').get(rolloutId, since) as { n: number }).n;
  }

  /** What the exponential ramp counts. */
  rampCounts(rolloutId: string): { succeeded: number; notified: number } {
    return this.db.prepare(`SELECT COALESCE(SUM(state = 'succeeded'), 0) AS succeeded, COALESCE(SUM(sent_at IS NOT NULL), 0) AS notified
      FROM executions WHERE rollout_id = ?`).get(rolloutId) as { succeeded: number; notified: number };
  }

  /** Rollouts with a deploy under way on some device. */
  rolloutsInFlight(): string[] {
    return (this.db.prepare(`SELECT DISTINCT rollout_id FROM executions WHERE state IN (${IN_FLIGHT})`).all() as { rollout_id: string }[]).map((r) => r.rollout_id);
  }

  /** Deploys sent at or before `sentBy` that have not finished. */
  overdue(rolloutId: string, sentBy: number): ExecutionRow[] {
    return this.db.prepare(`SELECT * FROM executions WHERE rollout_id = ? AND state IN (${IN_FLIGHT}) AND sent_at <= ? ORDER BY wave, seq`)
      .all(rolloutId, sentBy) as ExecutionRow[];
  }

  /** Device ids in rollouts that are not over: a device takes part in one such rollout at a time. */
  busyDevices(): Map<string, string> {
    const rows = this.db.prepare(`SELECT e.device_id, e.rollout_id FROM executions e JOIN rollouts r ON r.id = e.rollout_id
      WHERE r.state IN (${ACTIVE})`).all() as { device_id: string; rollout_id: string }[];
    return new Map(rows.map((r) => [r.device_id, r.rollout_id]));
  }

  updateExecution(rolloutId: string, deviceId: string, fields: Partial<Omit<ExecutionRow, 'rollout_id' | 'device_id'>>): void {
    const set = setClause(fields);
    this.db.prepare(`UPDATE executions SET ${set.sql} WHERE rollout_id = ? AND device_id = ?`).run(...set.values, rolloutId, deviceId);
  }

  /** queued → sent, written before the command leaves; false when the row is no longer queued. */
  markSent(rolloutId: string, deviceId: string, now: number): boolean {
    return this.db.prepare(`UPDATE executions SET state = 'sent', sent_at = ?, updated_at = ? WHERE rollout_id = ? AND device_id = ? AND state = 'queued'`)
      .run(now, now, rolloutId, deviceId).changes === 1;
  }

  /** sent → queued after a publish that failed, unless the device has answered meanwhile. */
  unsend(rolloutId: string, deviceId: string, now: number): boolean {
    return this.db.prepare(`UPDATE executions SET state = 'queued', sent_at = NULL, updated_at = ? WHERE rollout_id = ? AND device_id = ? AND state = 'sent' AND device_state IS NULL`)
      .run(now, rolloutId, deviceId).changes === 1;
  }

  /** Queue a rollback for one device, once per rollout. */
  queueRollback(rolloutId: string, deviceId: string, commandId: string, now: number): boolean {
    return this.db.prepare(`UPDATE executions SET rollback_state = 'queued', rollback_command_id = ?, updated_at = ?
      WHERE rollout_id = ? AND device_id = ? AND rollback_state IS NULL`).run(commandId, now, rolloutId, deviceId).changes === 1;
  }

  /**
   * Queue a rollback for every device of the rollout that may run, or come to run, the package: it was
   * sent the deploy, and has not reported that the deploy failed (a failed deploy activates nothing).
   */
  queueAbortRollbacks(rolloutId: string, commandIdPrefix: string, now: number): number {
    return this.db.prepare(`UPDATE executions SET rollback_state = 'queued', rollback_command_id = ? || device_id, updated_at = ?
      WHERE rollout_id = ? AND rollback_state IS NULL AND sent_at IS NOT NULL AND state <> 'queued'
        AND (device_state IS NULL OR device_state NOT IN ('failed', 'rolled_back'))`).run(commandIdPrefix, now, rolloutId).changes;
  }

  queuedRollbacks(): ExecutionRow[] {
    return this.db.prepare(`SELECT * FROM executions WHERE rollback_state = 'queued' ORDER BY rollout_id, wave, seq`).all() as ExecutionRow[];
  }

  markRollbackSent(rolloutId: string, deviceId: string, now: number): boolean {
    return this.db.prepare(`UPDATE executions SET rollback_state = 'sent', rollback_sent_at = ?, updated_at = ?
      WHERE rollout_id = ? AND device_id = ? AND rollback_state = 'queued'`).run(now, now, rolloutId, deviceId).changes === 1;
  }

  unsendRollback(rolloutId: string, deviceId: string, now: number): void {
    this.db.prepare(`UPDATE executions SET rollback_state = 'queued', rollback_sent_at = NULL, updated_at = ?
      WHERE rollout_id = ? AND device_id = ? AND rollback_state = 'sent'`).run(now, rolloutId, deviceId);
  }
}
