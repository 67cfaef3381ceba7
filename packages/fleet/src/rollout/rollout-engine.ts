import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { DEVICE_ID_RE, makeCommand, type BenchMessage, type EventMessage, isReservedDeviceId } from '@kd-edge/core/protocol';
import { silentLogger, type Logger } from '@kd-edge/core/util';
import type Database from 'better-sqlite3';
import { executionRank, isFinalExecutionState, type ExecutionState } from './execution-state.js';
import { gateViolation, hasGates } from './rollout-gates.js';
import { RolloutError } from './rollout-error.js';
import { planWaves } from './rollout-plan.js';
import { currentRate } from './rollout-rate.js';
import { parseRolloutSpec, type RolloutSpec, type RolloutSpecInput, type RolloutTarget } from './rollout-spec.js';
import { RolloutStore, type ExecutionRow, type RolloutRow, type WaveRow } from './rollout-store.js';
import { ACTIVE_ROLLOUT_STATES, type ExecutionInfo, type RolloutInfo, type RolloutState, type WaveInfo } from './rollout-types.js';
import { tallyWave, waveDone } from './wave-tally.js';

/** A command as handed to `sendCommand`: a protocol command object (see core's makeCommand). */
export type RolloutCommand = Record<string, unknown> & { id: string; command: string; deviceId: string };

/** How the engine reaches the rest of the fleet; it knows nothing of MQTT or HTTP. */
export interface RolloutEngineOptions {
  /** The fleet database, migrated with ROLLOUT_MIGRATIONS. */
  db: Database.Database;
  /** Current time in ms (injected so that tests drive the clock). */
  now: () => number;
  /** Publish a command to a device (QoS 1 on its cmd topic); resolves once the broker has it. */
  sendCommand: (deviceId: string, command: RolloutCommand) => Promise<void>;
  /** Whether a device is online now: online devices are sent their command first. Offline ones are sent it too. */
  deviceOnline?: (deviceId: string) => boolean;
  /** Turn a target into device ids, once, when the rollout starts. */
  resolveTargets: (target: RolloutTarget) => string[];
  /** Build the (signed) deploy command for one device; its `id` must be `commandId`. */
  makeDeployCommand: (rollout: RolloutInfo, deviceId: string, commandId: string) => RolloutCommand | Promise<RolloutCommand>;
  /** Build a rollback command with `fromVersion` (the fleet signs rollbacks); by default an unsigned one from core's makeCommand. */
  makeRollbackCommand?: (rollout: RolloutInfo, deviceId: string, commandId: string, fromVersion: string) => RolloutCommand | Promise<RolloutCommand>;
  /** New rollout ids: `[A-Za-z0-9]{1,40}`, never reused (agents remember command ids); 12 random hex characters by default. */
  newId?: () => string;
  /** Silent by default. */
  logger?: Logger;
}

/** Events of a {@link RolloutEngine}: state changes as they are stored, commands as they leave, and failures that did not stop it. */
export interface RolloutEngineEvents {
  rollout: [rollout: RolloutInfo];
  wave: [wave: WaveInfo];
  execution: [execution: ExecutionInfo];
  command: [sent: { rolloutId: string; deviceId: string; commandId: string; kind: 'deploy' | 'rollback' }];
  error: [error: Error];
}

const ROLLOUT_ID_RE = /^[A-Za-z0-9]{1,40}$/;
const MINUTE_MS = 60_000;

/** The deploy command id of a device in a rollout: deterministic, so a restart never makes a second command. */
export function deployCommandId(rolloutId: string, deviceId: string): string {
  return `ro-${rolloutId}-${deviceId}`;
}

/** The rollback command id of a device in a rollout (one rollback per device and rollout). */
export function rollbackCommandId(rolloutId: string, deviceId: string): string {
  return `rb-${rolloutId}-${deviceId}`;
}

function parseJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

/**
 * Staged rollouts of one package to many devices: waves (canary, then cumulative percentages), a rate
 * limit with an exponential ramp, per-device time-outs, fleet-side gates on each device's bench report,
 * success and error thresholds, approval between waves, pause/resume/abort, and rollback of the
 * rollout's devices on abort. Every decision is written to SQLite before a command leaves, so a new
 * engine on the same database carries on where the last one stopped: devices still queued get their
 * command, devices already sent one are not sent it again (their persistent session delivers it, or they
 * time out). The caller feeds device events and bench reports in and calls tick() periodically.
 * @example
 * const engine = new RolloutEngine({ db, now: Date.now, sendCommand, deviceOnline, resolveTargets, makeDeployCommand });
 * const id = engine.start({ package, target: { tags: ['lab'] }, waves: { canary: { count: 1 }, percents: [50, 100] } });
 * setInterval(() => void engine.tick(), 1000);
 * mqtt.on('message', (topic, payload) => { ... engine.onEvent(deviceId, parseMessage('event', payload)); });
 */
export class RolloutEngine extends EventEmitter<RolloutEngineEvents> {
  readonly #store: RolloutStore;
  readonly #options: RolloutEngineOptions;
  readonly #log: Logger;
  #chain: Promise<void> = Promise.resolve();

  constructor(options: RolloutEngineOptions) {
    super();
    for (const name of ['now', 'sendCommand', 'resolveTargets', 'makeDeployCommand'] as const) {
      if (typeof options[name] !== 'function') throw new TypeError(`options.${name} must be a function`);
    }
    if (options.db === undefined || options.db === null) throw new TypeError('options.db must be a better-sqlite3 Database');
    this.#options = options;
    this.#store = new RolloutStore(options.db);
    this.#log = options.logger ?? silentLogger;
  }

  // --- operator actions ---

  /**
   * Validate the spec, resolve its targets, plan the waves and store the rollout, running its first wave.
   * Nothing is sent until the next tick(). Throws FLEET_ROLLOUT_SPEC, FLEET_ROLLOUT_NO_TARGETS, or
   * FLEET_ROLLOUT_CONFLICT when a target is in another rollout that is not over.
   */
  start(input: RolloutSpecInput): string {
    const spec = parseRolloutSpec(input);
    const resolved = this.#options.resolveTargets(spec.target);
    const deviceIds = [...new Set(resolved)];
    const bad = deviceIds.find((id) => typeof id !== 'string' || !DEVICE_ID_RE.test(id) || isReservedDeviceId(id));
    if (bad !== undefined) throw new TypeError(`resolveTargets returned ${JSON.stringify(bad)}, which is not a device id (or is a service account's)`);
    if (deviceIds.length === 0) throw new RolloutError('FLEET_ROLLOUT_NO_TARGETS', `the target ${JSON.stringify(spec.target)} matches no device`);
    const id = (this.#options.newId ?? (() => randomBytes(6).toString('hex')))();
    if (!ROLLOUT_ID_RE.test(id)) throw new TypeError(`options.newId returned ${JSON.stringify(id)}; expected 1-40 characters of A-Z, a-z, 0-9`);
    const waves = planWaves(deviceIds, spec.waves);
    const now = this.#now();
    this.#store.transaction(() => {
      // Checked inside the transaction so that two starts cannot both take a device.
      const busy = this.#store.busyDevices();
      const taken = deviceIds.filter((d) => busy.has(d));
      if (taken.length > 0) {
        const list = taken.slice(0, 5).map((d) => `${d} (rollout ${busy.get(d)})`).join(', ');
        throw new RolloutError('FLEET_ROLLOUT_CONFLICT', `${taken.length} target device(s) are in a rollout that is not over: ${list}${taken.length > 5 ? ', …' : ''}`);
      }
      this.#store.insertRollout({
        id, package_name: spec.package.name, package_version: spec.package.version, package_sha256: spec.package.sha256,
        spec_json: JSON.stringify(spec), state: 'running', created_at: now, updated_at: now, current_wave: 0, reason: null,
      });
      let seq = 0;
      waves.forEach((devices, idx) => {
        this.#store.insertWave({
          rollout_id: id, idx, device_ids_json: JSON.stringify(devices), state: idx === 0 ? 'running' : 'pending',
          started_at: idx === 0 ? now : null, ended_at: null, gate_results_json: null,
        });
        for (const deviceId of devices) {
          this.#store.insertExecution({ rollout_id: id, device_id: deviceId, wave: idx, seq: seq++, command_id: deployCommandId(id, deviceId), updated_at: now });
        }
      });
    });
    this.#log.info(`rollout ${id}: ${spec.package.name}@${spec.package.version} to ${deviceIds.length} device(s) in ${waves.length} wave(s)`);
    this.#emitRollout(id);
    this.#emitWave(id, 0);
    return id;
  }

  /** Stop sending commands (devices already sent one carry on, and still time out). */
  pause(id: string, reason = 'paused by the operator'): void {
    this.#transition(id, ['running'], 'paused', reason);
  }

  /** Carry on after pause(). */
  resume(id: string): void {
    this.#transition(id, ['paused'], 'running', null);
  }

  /** Start the next wave of a rollout waiting for approval (after a wave with manual approval, or below its success threshold). */
  approve(id: string): void {
    const r = this.#require(id);
    if (r.state !== 'awaiting_approval') {
      throw new RolloutError('FLEET_ROLLOUT_STATE', `rollout ${id} is ${r.state}; only a rollout awaiting approval can be approved`, { rolloutId: id });
    }
    const next = r.current_wave + 1;
    const now = this.#now();
    this.#store.transaction(() => {
      this.#store.updateRollout(id, { state: 'running', current_wave: next, reason: null, updated_at: now });
      this.#store.updateWave(id, next, { state: 'running', started_at: now });
    });
    this.#log.info(`rollout ${id}: approved, wave ${next} starts`);
    this.#emitRollout(id);
    this.#emitWave(id, next);
  }

  /**
   * Abort a rollout that is not over: nothing more is deployed, and every device that was sent the
   * deploy and has not reported it failed is sent a rollback with `fromVersion` (so a device that never
   * activated the version refuses it harmlessly). Resolves once the rollbacks are handed to sendCommand.
   */
  async abort(id: string, reason = 'aborted by the operator'): Promise<void> {
    const r = this.#require(id);
    if (!ACTIVE_ROLLOUT_STATES.includes(r.state)) {
      throw new RolloutError('FLEET_ROLLOUT_STATE', `rollout ${id} is ${r.state} and cannot be aborted`, { rolloutId: id });
    }
    this.#abortNow(r, reason);
    await this.#serial(() => this.#sendRollbacks());
  }

  /**
   * Advance every rollout: time out overdue devices, judge the current wave (error threshold, success
   * threshold, approval), start the next wave, send queued deploys within the rate limit, and send
   * queued rollbacks. Calls never overlap; call it every second or so.
   */
  tick(): Promise<void> {
    return this.#serial(async () => {
      const now = this.#now();
      for (const id of this.#store.rolloutsInFlight()) this.#timeOut(id, now);
      for (const r of this.#store.rollouts(['running'])) this.#evaluate(r.id);
      for (const r of this.#store.rollouts(['running'])) await this.#sendDeploys(r.id);
      await this.#sendRollbacks();
    });
  }

  // --- device input ---

  /**
   * Apply a device's event. Events for command ids the engine did not issue, or from another device
   * than the command's, are ignored; so are repeats and events that would move a device backwards.
   * Returns whether anything changed.
   */
  onEvent(deviceId: string, event: Pick<EventMessage, 'commandId' | 'state'> & Partial<Pick<EventMessage, 'code' | 'message' | 'result'>>): boolean {
    if (typeof event.commandId !== 'string') return false;
    const deploy = this.#store.byCommandId(event.commandId);
    if (deploy !== undefined) return deploy.device_id === deviceId && this.#deployEvent(deploy, event);
    const rollback = this.#store.byRollbackCommandId(event.commandId);
    if (rollback !== undefined) return rollback.device_id === deviceId && this.#rollbackEvent(rollback, event);
    return false;
  }

  /**
   * Apply a device's bench report for a deploy (matched by `commandId`): the first report is stored and
   * judged against the rollout's gates; a violation fails the device with `GATE_P95`, `GATE_FPS` or
   * `GATE_MAP50`. Returns whether anything changed.
   */
  onBench(deviceId: string, bench: BenchMessage): boolean {
    if (typeof bench.commandId !== 'string') return false;
    const e = this.#store.byCommandId(bench.commandId);
    if (e === undefined || e.device_id !== deviceId || e.bench_json !== null) return false;
    const r = this.#require(e.rollout_id);
    const spec = JSON.parse(r.spec_json) as RolloutSpec;
    const now = this.#now();
    const fields: Partial<ExecutionRow> = { bench_json: JSON.stringify(bench), updated_at: now };
    const violation = hasGates(spec.gates) ? gateViolation(bench, spec.gates) : undefined;
    this.#store.transaction(() => {
      if (!isFinalExecutionState(e.state)) {
        if (violation !== undefined) Object.assign(fields, { state: 'failed', code: violation.code, message: violation.message });
        else if (e.device_state === 'succeeded') fields.state = 'succeeded';
      }
      this.#store.updateExecution(e.rollout_id, e.device_id, fields);
      // The device activated a version the fleet judges failed: take it back.
      if (violation !== undefined && fields.state === 'failed' && e.device_state === 'succeeded') this.#queueGateRollback(e, now);
    });
    this.#emitExecution(e.rollout_id, e.device_id);
    return true;
  }

  // --- queries ---

  /** A rollout, or undefined. */
  get(id: string): RolloutInfo | undefined {
    const r = this.#store.rollout(id);
    return r === undefined ? undefined : this.#info(r);
  }

  /** Every rollout, oldest first, optionally only those in the given states. */
  list(states?: readonly RolloutState[]): RolloutInfo[] {
    return this.#store.rollouts(states).map((r) => this.#info(r));
  }

  /** A rollout's waves in order. */
  waves(id: string): WaveInfo[] {
    return this.#store.waves(id).map(waveInfo);
  }

  /** A rollout's devices, wave by wave in planned order. */
  executions(id: string): ExecutionInfo[] {
    return this.#store.executions(id).map(executionInfo);
  }

  // --- internals ---

  #now(): number {
    return this.#options.now();
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  #require(id: string): RolloutRow {
    const r = this.#store.rollout(id);
    if (r === undefined) throw new RolloutError('FLEET_ROLLOUT_NOT_FOUND', `no rollout ${JSON.stringify(id)}`, { rolloutId: id });
    return r;
  }

  #transition(id: string, from: readonly RolloutState[], to: RolloutState, reason: string | null): void {
    const r = this.#require(id);
    if (!from.includes(r.state)) {
      throw new RolloutError('FLEET_ROLLOUT_STATE', `rollout ${id} is ${r.state}; it must be ${from.join(' or ')} to become ${to}`, { rolloutId: id });
    }
    this.#store.updateRollout(id, { state: to, reason, updated_at: this.#now() });
    this.#log.info(`rollout ${id}: ${r.state} → ${to}${reason ? ` (${reason})` : ''}`);
    this.#emitRollout(id);
  }

  #abortNow(r: RolloutRow, reason: string): void {
    const now = this.#now();
    let queued = 0;
    this.#store.transaction(() => {
      this.#store.updateRollout(r.id, { state: 'aborted', reason, updated_at: now });
      const wave = this.#store.wave(r.id, r.current_wave);
      if (wave !== undefined && wave.state === 'running') {
        this.#store.updateWave(r.id, wave.idx, { state: 'aborted', ended_at: now, gate_results_json: JSON.stringify(tallyWave(this.#store.executions(r.id, wave.idx))) });
      }
      queued = this.#store.queueAbortRollbacks(r.id, rollbackCommandId(r.id, ''), now);
    });
    this.#log.warn(`rollout ${r.id}: aborted (${reason}); ${queued} device(s) to roll back`);
    this.#emitRollout(r.id);
    this.#emitWave(r.id, r.current_wave);
  }

  /** Devices sent their deploy more than deviceTimeoutSec ago that have not finished. */
  #timeOut(rolloutId: string, now: number): void {
    const r = this.#require(rolloutId);
    const spec = JSON.parse(r.spec_json) as RolloutSpec;
    for (const e of this.#store.overdue(rolloutId, now - spec.deviceTimeoutSec * 1000)) {
      this.#store.transaction(() => {
        if (e.device_state === 'succeeded') {
          // Activated, but the report the gates need never came: not a pass, and the version comes off again.
          this.#store.updateExecution(rolloutId, e.device_id, {
            state: 'failed', code: 'GATE_NO_REPORT', updated_at: now,
            message: `the device reported success but no bench report arrived within ${spec.deviceTimeoutSec} s, so the gates could not be checked`,
          });
          this.#queueGateRollback(e, now);
        } else {
          this.#store.updateExecution(rolloutId, e.device_id, {
            state: 'timed_out', code: 'FLEET_DEVICE_TIMEOUT', updated_at: now,
            message: `no outcome within ${spec.deviceTimeoutSec} s of sending (last state: ${e.device_state ?? e.state})`,
          });
        }
      });
      this.#emitExecution(rolloutId, e.device_id);
    }
  }

  #queueGateRollback(e: ExecutionRow, now: number): void {
    this.#store.queueRollback(e.rollout_id, e.device_id, rollbackCommandId(e.rollout_id, e.device_id), now);
  }

  /** Judge the current wave of a running rollout and move on when it is over. */
  #evaluate(id: string): void {
    const r = this.#require(id);
    if (r.state !== 'running') return;
    const spec = JSON.parse(r.spec_json) as RolloutSpec;
    const idx = r.current_wave;
    const results = tallyWave(this.#store.executions(id, idx));
    const pct = (x: number): string => `${Math.round(x * 1000) / 10} %`;
    const failures = results.failed + results.timedOut + results.rolledBack;
    // Checked while results come in, so a bad version stops before the whole wave has it.
    if (results.failureShare >= spec.errorThreshold) {
      this.#abortNow(r, `wave ${idx}: ${failures} of ${results.total} device(s) failed (${pct(results.failureShare)}, error threshold ${pct(spec.errorThreshold)})`);
      return;
    }
    if (!waveDone(results)) return;
    const passed = results.successShare >= spec.successThreshold;
    const last = idx === this.#store.waveCount(id) - 1;
    const now = this.#now();
    const summary = `wave ${idx}: ${results.succeeded} of ${results.total} device(s) succeeded (${pct(results.successShare)}, success threshold ${pct(spec.successThreshold)})`;
    if (!passed && spec.onBelowThreshold === 'abort') {
      this.#abortNow(r, summary);
      return;
    }
    let state: RolloutState;
    let reason: string | null = null;
    let next: number | undefined;
    if (!passed) {
      // With no wave left there is nothing to approve: the rollout ends short of its threshold.
      state = last ? 'failed' : 'awaiting_approval';
      reason = last ? summary : `${summary}; approve to go on`;
    } else if (last) {
      state = 'succeeded';
    } else if (spec.approval === 'manual') {
      state = 'awaiting_approval';
      reason = `${summary}; waiting for approval of wave ${idx + 1}`;
    } else {
      state = 'running';
      next = idx + 1;
    }
    this.#store.transaction(() => {
      this.#store.updateWave(id, idx, { state: passed ? 'passed' : 'below_threshold', ended_at: now, gate_results_json: JSON.stringify(results) });
      this.#store.updateRollout(id, { state, reason, updated_at: now, ...(next !== undefined ? { current_wave: next } : {}) });
      if (next !== undefined) this.#store.updateWave(id, next, { state: 'running', started_at: now });
    });
    this.#log.info(`rollout ${id}: ${summary}; ${state}${next !== undefined ? `, wave ${next} starts` : ''}`);
    this.#emitWave(id, idx);
    if (next !== undefined) this.#emitWave(id, next);
    this.#emitRollout(id);
  }

  /** Send queued deploys of the current wave, online devices first, within the rate limit. */
  async #sendDeploys(id: string): Promise<void> {
    const r = this.#require(id);
    const spec = JSON.parse(r.spec_json) as RolloutSpec;
    const rate = currentRate(spec.rate, this.#store.rampCounts(id));
    let allowance = rate - this.#store.sentSince(id, this.#now() - MINUTE_MS);
    if (allowance <= 0) return;
    const online = this.#options.deviceOnline;
    const queued = this.#store.queued(id, r.current_wave);
    // Stable: within each group, the planned order.
    const ordered = online === undefined ? queued : [...queued.filter((e) => online(e.device_id)), ...queued.filter((e) => !online(e.device_id))];
    const info = this.#info(r);
    for (const e of ordered) {
      if (allowance <= 0) break;
      const command = await this.#build('deploy', () => this.#options.makeDeployCommand(info, e.device_id, e.command_id), e.command_id);
      // Operator actions and events run between awaits: look again before anything leaves.
      const fresh = this.#store.rollout(id);
      if (fresh === undefined || fresh.state !== 'running' || fresh.current_wave !== r.current_wave) return;
      if (command instanceof Error) {
        this.#store.updateExecution(id, e.device_id, { state: 'failed', code: 'FLEET_DEPLOY_COMMAND', message: command.message.slice(0, 4000), updated_at: this.#now() });
        this.#emitExecution(id, e.device_id);
        this.#fail(command);
        continue;
      }
      if (!this.#store.markSent(id, e.device_id, this.#now())) continue;
      allowance--;
      this.#emitExecution(id, e.device_id);
      try {
        await this.#options.sendCommand(e.device_id, command);
        this.emit('command', { rolloutId: id, deviceId: e.device_id, commandId: e.command_id, kind: 'deploy' });
      } catch (err) {
        // Not delivered to the broker: queued again for the next tick, same id, so a duplicate is harmless.
        if (this.#store.unsend(id, e.device_id, this.#now())) this.#emitExecution(id, e.device_id);
        this.#fail(new Error(`rollout ${id}: sending the deploy to ${e.device_id} failed: ${(err as Error).message}`, { cause: err }));
      }
    }
  }

  async #sendRollbacks(): Promise<void> {
    for (const e of this.#store.queuedRollbacks()) {
      const r = this.#require(e.rollout_id);
      const commandId = e.rollback_command_id!;
      const info = this.#info(r);
      const command = await this.#build('rollback', () => (this.#options.makeRollbackCommand ?? defaultRollback)(info, e.device_id, commandId, r.package_version), commandId);
      if (command instanceof Error) {
        this.#store.updateExecution(e.rollout_id, e.device_id, { rollback_state: 'failed', rollback_code: 'FLEET_ROLLBACK_COMMAND', updated_at: this.#now() });
        this.#emitExecution(e.rollout_id, e.device_id);
        this.#fail(command);
        continue;
      }
      if (!this.#store.markRollbackSent(e.rollout_id, e.device_id, this.#now())) continue;
      this.#emitExecution(e.rollout_id, e.device_id);
      try {
        await this.#options.sendCommand(e.device_id, command);
        this.emit('command', { rolloutId: e.rollout_id, deviceId: e.device_id, commandId, kind: 'rollback' });
      } catch (err) {
        this.#store.unsendRollback(e.rollout_id, e.device_id, this.#now());
        this.#fail(new Error(`rollout ${e.rollout_id}: sending the rollback to ${e.device_id} failed: ${(err as Error).message}`, { cause: err }));
      }
    }
  }

  async #build(kind: string, make: () => RolloutCommand | Promise<RolloutCommand>, commandId: string): Promise<RolloutCommand | Error> {
    try {
      const command = await make();
      if (command?.id !== commandId) return new Error(`the ${kind} command builder returned id ${JSON.stringify(command?.id)}, not ${commandId}`);
      return command;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  #deployEvent(e: ExecutionRow, event: Pick<EventMessage, 'state'> & Partial<Pick<EventMessage, 'code' | 'message' | 'result'>>): boolean {
    const reported = event.state;
    const prev = e.device_state;
    // The device's own progress only moves forward, and its first final state stands.
    if (prev !== null && (executionRank(prev) >= executionRank('succeeded') || executionRank(reported) <= executionRank(prev))) return false;
    const now = this.#now();
    const fields: Partial<ExecutionRow> = { device_state: reported, updated_at: now };
    // Answered a command whose publish was reported failed (and so was queued again): it did arrive.
    if (e.sent_at === null) fields.sent_at = now;
    let gateRollback = false;
    if (isFinalExecutionState(e.state)) {
      // The verdict stands (a late answer after a time-out, say); a device that went on to activate
      // a version that failed the fleet's gates is rolled back.
      gateRollback = reported === 'succeeded' && e.state === 'failed' && (e.code ?? '').startsWith('GATE_');
    } else if (reported === 'succeeded') {
      const spec = JSON.parse(this.#require(e.rollout_id).spec_json) as RolloutSpec;
      const alreadyActive = (event.result as { alreadyActive?: unknown } | undefined)?.alreadyActive === true;
      // A passing report makes it a success; without one yet, the verdict waits (or times out).
      if (hasGates(spec.gates) && e.bench_json === null && !alreadyActive) fields.state = 'benchmarking';
      else fields.state = 'succeeded';
    } else if (reported === 'failed' || reported === 'rolled_back') {
      // A deploy's rolled_back follows a gate the device applied itself: the old version kept serving.
      Object.assign(fields, { state: 'failed', code: event.code ?? 'DEVICE_FAILED', message: event.message?.slice(0, 4000) ?? `the device reported ${reported}` });
    } else if (executionRank(reported) > executionRank(e.state)) {
      fields.state = reported as ExecutionState;
    }
    if (fields.state === e.state) delete fields.state;
    this.#store.transaction(() => {
      this.#store.updateExecution(e.rollout_id, e.device_id, fields);
      if (gateRollback) this.#queueGateRollback(e, now);
    });
    this.#emitExecution(e.rollout_id, e.device_id);
    return true;
  }

  #rollbackEvent(e: ExecutionRow, event: Pick<EventMessage, 'state'> & Partial<Pick<EventMessage, 'code' | 'message'>>): boolean {
    if (e.rollback_state === 'rolled_back' || e.rollback_state === 'failed') return false;
    const now = this.#now();
    if (event.state === 'rolled_back' || event.state === 'succeeded') {
      this.#store.updateExecution(e.rollout_id, e.device_id, {
        state: 'rolled_back', rollback_state: 'rolled_back', updated_at: now,
        ...(e.code === null ? { message: event.message?.slice(0, 4000) ?? 'rolled back by the fleet' } : {}),
      });
    } else if (event.state === 'failed') {
      // Typically AGENT_ROLLBACK_STALE: the device never activated this version, which is what the rollback wanted.
      this.#store.updateExecution(e.rollout_id, e.device_id, { rollback_state: 'failed', rollback_code: event.code ?? 'DEVICE_FAILED', updated_at: now });
    } else {
      return false;
    }
    this.#emitExecution(e.rollout_id, e.device_id);
    return true;
  }

  #fail(err: Error): void {
    this.#log.error(err.message);
    // An 'error' event with no listener would throw out of tick(); the logger has it either way.
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  #info(r: RolloutRow): RolloutInfo {
    return {
      id: r.id,
      package: { name: r.package_name, version: r.package_version, sha256: r.package_sha256 },
      spec: JSON.parse(r.spec_json) as RolloutSpec,
      state: r.state,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      currentWave: r.current_wave,
      waveCount: this.#store.waveCount(r.id),
      reason: r.reason,
    };
  }

  #emitRollout(id: string): void {
    const r = this.#store.rollout(id);
    if (r !== undefined) this.emit('rollout', this.#info(r));
  }

  #emitWave(id: string, idx: number): void {
    const w = this.#store.wave(id, idx);
    if (w !== undefined) this.emit('wave', waveInfo(w));
  }

  #emitExecution(id: string, deviceId: string): void {
    const e = this.#store.execution(id, deviceId);
    if (e !== undefined) this.emit('execution', executionInfo(e));
  }
}

function defaultRollback(rollout: RolloutInfo, deviceId: string, commandId: string, fromVersion: string): RolloutCommand {
  return makeCommand({ command: 'rollback', id: commandId, deviceId, rolloutId: rollout.id, fromVersion }) as RolloutCommand;
}

function waveInfo(w: WaveRow): WaveInfo {
  return {
    rolloutId: w.rollout_id,
    index: w.idx,
    deviceIds: JSON.parse(w.device_ids_json) as string[],
    state: w.state,
    startedAt: w.started_at,
    endedAt: w.ended_at,
    results: parseJson(w.gate_results_json),
  };
}

function executionInfo(e: ExecutionRow): ExecutionInfo {
  return {
    rolloutId: e.rollout_id,
    deviceId: e.device_id,
    wave: e.wave,
    state: e.state,
    commandId: e.command_id,
    sentAt: e.sent_at,
    updatedAt: e.updated_at,
    code: e.code,
    message: e.message,
    bench: parseJson<BenchMessage>(e.bench_json),
    deviceState: e.device_state,
    rollback: e.rollback_command_id === null || e.rollback_state === null
      ? null
      : { commandId: e.rollback_command_id, state: e.rollback_state, sentAt: e.rollback_sent_at, code: e.rollback_code },
  };
}
