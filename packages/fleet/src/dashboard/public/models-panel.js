// @ts-check
// The models view: every package in the registry with its role, who signed it and, for an adapted package pulled from
// a device (issue 16), its origin and whether it was promoted; a promote button on a pulled, unpromoted one, with the
// request's progress and the server's refusal in the package's row.

import { closestTarget, clock, h } from './dom.js';

/** @import { PackageSummary } from '../api-types.js' */

/**
 * What a package is in the fleet: `teacher`, `pushed` (a fleet release), `pulled` (adapted on a device, signed by that
 * device only: not rolled out) or `promoted` (adapted, then re-signed with the fleet key: rolled out like any model).
 * @param {PackageSummary} p
 * @returns {'teacher' | 'pushed' | 'pulled' | 'promoted'}
 */
export function packageState(p) {
  if (p.role === 'teacher') return 'teacher';
  if (!p.origin) return 'pushed';
  return p.promotedAt === null ? 'pulled' : 'promoted';
}

/**
 * The package's state in words, with the device and job an adapted one came from.
 * @param {PackageSummary} p
 */
export function packageStateText(p) {
  const state = packageState(p);
  if (state === 'teacher') return 'teacher (pushed to devices, never rolled out)';
  if (state === 'pushed' || !p.origin) return 'pushed';
  const from = `adapted on ${p.origin.deviceId} (job ${p.origin.jobId})`;
  return state === 'promoted' ? `${from}, promoted ${clock(p.promotedAt ?? 0)}` : `${from}, not promoted: signed by the device`;
}

/**
 * Bytes as `12.3 MiB`.
 * @param {number} n
 */
export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * Whether a package is one a rollout may send (neither a teacher nor a pulled, unpromoted adaptation).
 * @param {PackageSummary} p
 */
export function rollable(p) {
  const state = packageState(p);
  return state === 'pushed' || state === 'promoted';
}

/** The panel; it keeps the registry's packages as last loaded, and the promotions asked for from this page. */
export class ModelsPanel {
  /** @param {{ body: HTMLElement, empty: HTMLElement, count: HTMLElement, onPromote: (name: string, version: string) => void }} o */
  constructor(o) {
    this.o = o;
    /** @type {Map<string, PackageSummary>} by `name@version` */
    this.packages = new Map();
    this.canControl = false;
    /** @type {Set<string>} packages whose promotion is on its way to the server */
    this.promoting = new Set();
    /** @type {Map<string, string>} the server's refusal of a promotion, shown in the package's row until the next try */
    this.errors = new Map();
    o.body.addEventListener('click', (ev) => {
      const b = closestTarget(ev, 'button[data-action="promote"]');
      const row = b && /** @type {HTMLElement | null} */ (b.closest('[data-version]'));
      if (row) o.onPromote(/** @type {string} */ (row.dataset.name), /** @type {string} */ (row.dataset.version));
    });
  }

  /** @param {PackageSummary[]} list */
  setAll(list) {
    this.packages = new Map(list.map((p) => [`${p.name}@${p.version}`, p]));
  }

  /**
   * One package's new record (a promotion's answer).
   * @param {PackageSummary} p
   */
  upsert(p) {
    this.packages.set(`${p.name}@${p.version}`, p);
  }

  /**
   * Whether the registry as last loaded holds `name@version` with this signer and promotion: a job's pull that says
   * otherwise means the list is stale.
   * @param {{ name: string, version: string, sha256: string, promotedAt: number | null }} p
   */
  holds(p) {
    const have = this.packages.get(`${p.name}@${p.version}`);
    return have !== undefined && have.sha256 === p.sha256 && have.promotedAt === p.promotedAt;
  }

  /**
   * A promotion asked for from this page: `sending` while it is on its way, then done, with the server's refusal as `error`.
   * @param {string} name
   * @param {string} version
   * @param {{ sending: boolean, error?: string }} s
   */
  promoteRequest(name, version, s) {
    const key = `${name}@${version}`;
    if (s.sending) {
      this.promoting.add(key);
      this.errors.delete(key);
    } else {
      this.promoting.delete(key);
      if (s.error) this.errors.set(key, s.error);
    }
  }

  /** Packages a rollout may send, most recently pushed first. */
  rollable() {
    return [...this.packages.values()].filter(rollable).sort((a, b) => (b.pushedAt ?? 0) - (a.pushedAt ?? 0));
  }

  render() {
    const list = [...this.packages.values()].sort((a, b) => a.name.localeCompare(b.name) || (b.pushedAt ?? 0) - (a.pushedAt ?? 0));
    this.o.body.replaceChildren(...list.map((p) => this.#row(p)));
    this.o.empty.hidden = list.length > 0;
    const pulled = list.filter((p) => packageState(p) === 'pulled').length;
    this.o.count.textContent = list.length ? `${list.length} package${list.length === 1 ? '' : 's'}${pulled ? `, ${pulled} not promoted` : ''}` : '';
  }

  /** @param {PackageSummary} p */
  #row(p) {
    const key = `${p.name}@${p.version}`;
    const state = packageState(p);
    const sending = this.promoting.has(key);
    const promote = state === 'pulled'
      ? h('button', {
        type: 'button', 'data-action': 'promote', 'data-testid': 'model-promote', 'data-control': true, disabled: !this.canControl || sending,
        'aria-busy': sending ? 'true' : null, text: sending ? 'Promoting…' : 'Promote',
        title: `Re-sign ${key} with the fleet's key, so that it can be rolled out`,
      })
      : null;
    const error = this.errors.get(key);
    return h('tr', { 'data-testid': 'model-row', 'data-name': p.name, 'data-version': p.version, 'data-state': state },
      h('td', { 'data-col': 'package', class: 'code', text: key }),
      h('td', { 'data-col': 'role', text: p.role }),
      h('td', { 'data-col': 'state', class: `pkg-${state}`, text: packageStateText(p) },
        error ? h('div', { class: 'action-error', 'data-testid': 'model-error', role: 'alert', text: error }) : null),
      h('td', { 'data-col': 'key', class: 'code', text: p.keyId }),
      h('td', { 'data-col': 'size', class: 'num', text: bytes(p.size) }),
      h('td', { 'data-col': 'pushed', text: clock(p.pushedAt) }),
      h('td', { class: 'actions' }, promote));
  }
}
