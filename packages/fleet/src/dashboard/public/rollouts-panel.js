// @ts-check
// The rollouts panel: the list of rollouts, and for the selected one its warnings, waves (progress bars from its
// executions), gate results, failures with their reasons and rollbacks, and the operator's buttons.

import { closestTarget, clock, h, num } from './dom.js';

/**
 * @import { BenchMessage, ExecutionInfo, RolloutAction, RolloutDetail, RolloutGates, RolloutInfo, RolloutSpec,
 *   RolloutWarning, WaveInfo } from '../api-types.js'
 */

const IN_FLIGHT = new Set(['sent', 'accepted', 'downloading', 'verifying', 'activating', 'benchmarking']);
const FAILED = new Set(['failed', 'timed_out', 'rolled_back']);
const ACTIVE = new Set(['running', 'paused', 'awaiting_approval']);

/**
 * Which buttons a rollout in `state` offers.
 * @param {string} state
 * @returns {Record<RolloutAction, boolean>}
 */
export function actionsFor(state) {
  return {
    pause: state === 'running',
    resume: state === 'paused',
    approve: state === 'awaiting_approval',
    abort: ACTIVE.has(state),
  };
}

/**
 * Tally of one wave from the executions the dashboard holds (live, unlike WaveInfo.results, which is set when the wave ends).
 * @param {WaveInfo} wave
 * @param {Map<string, ExecutionInfo>} executions by device id
 */
export function tallyWave(wave, executions) {
  const t = { total: wave.deviceIds.length, succeeded: 0, failed: 0, inFlight: 0, queued: 0, rolledBack: 0 };
  for (const id of wave.deviceIds) {
    const e = executions.get(id);
    if (!e || e.wave !== wave.index || e.state === 'queued') t.queued++;
    else if (e.state === 'succeeded') t.succeeded++;
    else if (FAILED.has(e.state)) {
      t.failed++;
      if (e.state === 'rolled_back') t.rolledBack++;
    } else if (IN_FLIGHT.has(e.state)) t.inFlight++;
    else t.queued++;
  }
  return t;
}

/**
 * The gates the dashboard shows, each with the test the fleet applies (rollout-gates.ts).
 * @type {Array<{ key: keyof RolloutGates, code: string, label: (v: number) => string, ok: (b: BenchMessage, v: number) => boolean }>}
 */
const GATES = [
  { key: 'maxP95Ms', code: 'GATE_P95', label: (v) => `p95 ≤ ${v} ms`, ok: (b, v) => b.latencyMs && b.latencyMs.p95 <= v },
  { key: 'minFps', code: 'GATE_FPS', label: (v) => `fps ≥ ${v}`, ok: (b, v) => b.throughputFps >= v },
  { key: 'minMap50', code: 'GATE_MAP50', label: (v) => `mAP50 ≥ ${v}`, ok: (b, v) => b.accuracy !== undefined && b.accuracy.map50 >= v },
];

/**
 * Gate results of one wave: for each gate of the spec, how many of the wave's bench reports passed and failed it.
 * @param {RolloutSpec} spec
 * @param {WaveInfo} wave
 * @param {Map<string, ExecutionInfo>} executions by device id
 */
export function gateResults(spec, wave, executions) {
  const out = [];
  for (const g of GATES) {
    const limit = spec.gates ? spec.gates[g.key] : undefined;
    if (limit === undefined) continue;
    let passed = 0;
    let failed = 0;
    for (const id of wave.deviceIds) {
      const e = executions.get(id);
      if (!e || e.wave !== wave.index) continue;
      if (e.bench) {
        if (g.ok(e.bench, limit)) passed++;
        else failed++;
      } else if (e.code === g.code) failed++;
    }
    out.push({ code: g.code, label: g.label(limit), passed, failed });
  }
  return out;
}

/**
 * One line of what a rollout's spec says.
 * @param {RolloutSpec} spec
 */
function specSummary(spec) {
  const target = spec.target;
  const t = 'all' in target ? 'all devices' : 'tags' in target ? `tags ${target.tags.join(', ')}` : `${target.deviceIds.length} devices`;
  const canary = spec.waves.canary;
  const c = 'count' in canary ? `canary ${canary.count}` : `canary ${canary.percent}%`;
  const gates = GATES.filter((g) => spec.gates && spec.gates[g.key] !== undefined).map((g) => g.label(/** @type {number} */ (spec.gates[g.key])));
  return [
    `target ${t}`, `${c}, then ${spec.waves.percents.join(' / ')} %`, gates.length ? `gates ${gates.join(', ')}` : 'no gates',
    `approval ${spec.approval}`, `success ≥ ${Math.round(spec.successThreshold * 100)} %`, `abort at ${Math.round(spec.errorThreshold * 100)} % failed`,
    `${spec.rate.perMinute}/min`, `timeout ${spec.deviceTimeoutSec} s`,
  ].join(' · ');
}

/**
 * A rollout's warnings (FLEET_TRT_NO_CACHE: devices that will build fp16), [] when it has none or they are not known yet.
 * @param {RolloutInfo} r
 * @returns {RolloutWarning[]}
 */
function warningsOf(r) {
  return Array.isArray(r.warnings) ? r.warnings : [];
}

/**
 * The detail panel's element for `selector` (index.html has each one).
 * @param {HTMLElement} detail
 * @param {string} selector
 */
function part(detail, selector) {
  return /** @type {HTMLElement} */ (detail.querySelector(selector));
}

/** The panel; it keeps the rollouts it was given and the selected one's waves and executions. */
export class RolloutsPanel {
  /** @param {{ list: HTMLElement, detail: HTMLElement, onSelect: (id: string) => void, onAction: (id: string, action: RolloutAction) => void }} o */
  constructor(o) {
    this.o = o;
    /** @type {Map<string, RolloutInfo>} */
    this.rollouts = new Map();
    /** @type {string | null} */
    this.selectedId = null;
    /** @type {WaveInfo[]} the selected rollout's waves, by index */
    this.waves = [];
    /** @type {Map<string, ExecutionInfo>} the selected rollout's executions, by device id */
    this.executions = new Map();
    this.canControl = false;
    this.abortArmed = false;
    o.list.addEventListener('click', (ev) => {
      const li = closestTarget(ev, '[data-rollout-id]');
      if (li) o.onSelect(/** @type {string} */ (li.dataset.rolloutId));
    });
    for (const b of /** @type {NodeListOf<HTMLButtonElement>} */ (o.detail.querySelectorAll('[data-action]'))) {
      b.addEventListener('click', () => {
        if (!this.selectedId) return;
        // Abort rolls devices back: the first click arms it, the second (within 5 s) sends it.
        if (b.dataset.action === 'abort' && !this.abortArmed) {
          this.abortArmed = true;
          this.#renderButtons();
          setTimeout(() => {
            this.abortArmed = false;
            this.#renderButtons();
          }, 5000);
          return;
        }
        this.abortArmed = false;
        this.o.onAction(this.selectedId, /** @type {RolloutAction} */ (b.dataset.action));
      });
    }
  }

  /** @param {RolloutInfo[]} rollouts */
  setAll(rollouts) {
    this.rollouts = new Map(rollouts.map((r) => [r.id, r]));
  }

  /** @param {RolloutInfo} rollout */
  upsert(rollout) {
    this.rollouts.set(rollout.id, rollout);
  }

  /**
   * Selects a rollout; another rollout's waves and executions are dropped until its detail arrives.
   * @param {string} id
   */
  select(id) {
    if (id !== this.selectedId) {
      this.waves = [];
      this.executions = new Map();
      this.abortArmed = false;
    }
    this.selectedId = id;
  }

  /**
   * The selected rollout's full state: {rollout, waves, executions}.
   * @param {RolloutDetail} detail
   */
  setDetail(detail) {
    this.select(detail.rollout.id);
    this.rollouts.set(detail.rollout.id, detail.rollout);
    this.waves = [...detail.waves].sort((a, b) => a.index - b.index);
    this.executions = new Map(detail.executions.map((e) => [e.deviceId, e]));
  }

  /**
   * A `wave` event; true when it is the selected rollout's (the panel needs drawing).
   * @param {WaveInfo} w
   */
  wave(w) {
    if (w.rolloutId !== this.selectedId) return false;
    const i = this.waves.findIndex((x) => x.index === w.index);
    if (i >= 0) this.waves[i] = w;
    else this.waves.push(w);
    this.waves.sort((a, b) => a.index - b.index);
    return true;
  }

  /**
   * An `execution` event; true when it is the selected rollout's.
   * @param {ExecutionInfo} e
   */
  execution(e) {
    if (e.rolloutId !== this.selectedId) return false;
    this.executions.set(e.deviceId, e);
    return true;
  }

  render() {
    this.#renderList();
    this.#renderDetail();
  }

  #renderList() {
    const items = [...this.rollouts.values()].sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id));
    this.o.list.replaceChildren(...items.map((r) => h('li', {
      class: `rollout-item${r.id === this.selectedId ? ' selected' : ''}`, 'data-testid': 'rollout-item', 'data-rollout-id': r.id,
      'data-state': r.state, tabindex: '0',
    },
    h('span', { class: 'pkg', text: `${r.package.name}@${r.package.version}` }),
    h('span', { class: `state s-${r.state}`, text: r.state.replace('_', ' ') }),
    warningsOf(r).length > 0
      ? h('span', { class: 'warning-note', 'data-testid': 'rollout-item-warnings', text: `warning ${warningsOf(r).map((w) => w.code).join(', ')}` })
      : null,
    h('span', { class: 'muted', text: `wave ${Math.min(r.currentWave + 1, r.waveCount)}/${r.waveCount} · ${clock(r.createdAt)} · ${r.id}` }))));
    if (items.length === 0) this.o.list.append(h('li', { class: 'muted', text: 'No rollouts yet.' }));
  }

  #renderButtons() {
    const r = this.selectedId === null ? undefined : this.rollouts.get(this.selectedId);
    /** @type {Partial<Record<RolloutAction, boolean>>} */
    const allowed = r ? actionsFor(r.state) : {};
    for (const b of /** @type {NodeListOf<HTMLButtonElement>} */ (this.o.detail.querySelectorAll('[data-action]'))) {
      const a = /** @type {RolloutAction} */ (b.dataset.action);
      b.hidden = !allowed[a];
      b.disabled = !this.canControl || !allowed[a];
      if (a === 'abort') {
        b.textContent = this.abortArmed ? 'Confirm abort (rolls back)' : 'Abort';
        b.dataset.armed = String(this.abortArmed);
      }
    }
  }

  #renderDetail() {
    const d = this.o.detail;
    const r = this.selectedId === null ? undefined : this.rollouts.get(this.selectedId);
    d.hidden = !r;
    if (!r) return;
    d.dataset.rolloutId = r.id;
    d.dataset.state = r.state;
    part(d, '[data-testid="rollout-package-name"]').textContent = `${r.package.name}@${r.package.version}`;
    const state = part(d, '[data-testid="rollout-state"]');
    state.textContent = r.state.replace('_', ' ');
    state.className = `state s-${r.state}`;
    const reason = part(d, '[data-testid="rollout-reason"]');
    reason.hidden = !r.reason;
    reason.textContent = r.reason ? `Reason: ${r.reason}` : '';
    // As `kd-fleet rollout status` prints them: `warning FLEET_TRT_NO_CACHE: …`, in plain text.
    const warnings = part(d, '[data-testid="rollout-warnings"]');
    warnings.replaceChildren(...warningsOf(r).map((w) => h('li', {
      'data-testid': 'rollout-warning', 'data-code': w.code, text: `warning ${w.code}: ${w.message}`,
    })));
    warnings.hidden = warnings.childElementCount === 0;
    part(d, '[data-testid="rollout-spec"]').textContent = specSummary(r.spec);
    this.#renderButtons();

    const waves = this.waves.map((w) => {
      const t = tallyWave(w, this.executions);
      /** @param {number} n */
      const pct = (n) => `${t.total ? (100 * n) / t.total : 0}%`;
      const bar = h('div', { class: 'progress', 'data-testid': 'wave-progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': String(t.total), 'aria-valuenow': String(t.succeeded + t.failed) });
      /** @type {Array<[string, number]>} */
      const segments = [['succeeded', t.succeeded], ['failed', t.failed], ['inflight', t.inFlight], ['queued', t.queued]];
      for (const [cls, n] of segments) {
        const seg = h('span', { class: `seg ${cls}`, 'data-testid': `progress-${cls}`, 'data-count': String(n), title: `${n} ${cls}` });
        seg.style.width = pct(n);
        bar.append(seg);
      }
      const gates = gateResults(r.spec, w, this.executions).map((g) => h('li', {
        class: `gate ${g.failed ? 'bad' : 'good'}`, 'data-testid': 'gate-result', 'data-gate': g.code, 'data-passed': String(g.passed), 'data-failed': String(g.failed),
        text: `${g.label}: ${g.passed} passed, ${g.failed} failed`,
      }));
      const codes = w.results && Object.keys(w.results.codes).length
        ? h('div', { class: 'codes', 'data-testid': 'wave-codes', text: Object.entries(w.results.codes).map(([c, n]) => `${c} ×${n}`).join(', ') })
        : null;
      return h('li', { class: `wave w-${w.state}`, 'data-testid': 'rollout-wave', 'data-wave': String(w.index), 'data-state': w.state },
        h('div', { class: 'wave-head' },
          h('strong', { text: w.index === 0 ? 'Canary' : `Wave ${w.index}` }),
          h('span', { class: `state s-${w.state}`, 'data-testid': 'wave-state', text: w.state.replace('_', ' ') }),
          h('span', {
            class: 'muted', 'data-testid': 'wave-counts', 'data-succeeded': String(t.succeeded), 'data-failed': String(t.failed),
            'data-total': String(t.total),
            text: `${t.succeeded}/${t.total} succeeded · ${t.failed} failed · ${t.inFlight} in flight · ${t.queued} queued`,
          })),
        bar,
        gates.length ? h('ul', { class: 'gates', 'data-testid': 'wave-gates' }, ...gates) : null,
        codes);
    });
    part(d, '[data-testid="rollout-waves"]').replaceChildren(...waves);

    const failures = [...this.executions.values()]
      .filter((e) => FAILED.has(e.state) || e.rollback)
      .sort((a, b) => a.wave - b.wave || a.deviceId.localeCompare(b.deviceId, undefined, { numeric: true }));
    const rows = failures.map((e) => h('tr', { 'data-testid': 'rollout-failure', 'data-device-id': e.deviceId, 'data-state': e.state, 'data-code': e.code ?? '' },
      h('td', { text: e.deviceId }),
      h('td', { text: String(e.wave) }),
      h('td', { class: `s-${e.state}`, text: e.state.replace('_', ' ') }),
      h('td', { class: 'code', text: e.code ?? '' }),
      h('td', { text: e.message ?? (e.bench ? `p95 ${num(e.bench.latencyMs?.p95, 2)} ms, ${num(e.bench.throughputFps, 1)} fps` : '') }),
      h('td', { 'data-testid': 'rollback-state', 'data-rollback': e.rollback ? e.rollback.state : '', text: e.rollback ? `${e.rollback.state.replace('_', ' ')}${e.rollback.code ? ` (${e.rollback.code})` : ''}` : '' })));
    part(d, '#rd-failures').replaceChildren(...rows);
    part(d, '[data-testid="rollout-no-failures"]').hidden = rows.length > 0;
  }
}
