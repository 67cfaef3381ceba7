// @ts-check
// The adaptation jobs panel (issue 16): every device's on-device adaptation jobs, live from the `adapt` events: state,
// epoch, the last epoch's losses, hold-out and val mAP50-95 before → after, the decision with its reasons, the adapted
// version and whether it serves; a cancel button on a job still running.

import { closestTarget, clock, h, num } from './dom.js';

/** @import { AdaptEvaluation, AdaptJobInfo } from '../api-types.js' */

const FINAL = new Set(['succeeded', 'rejected', 'failed', 'cancelled']);

/**
 * `0.280 → 0.350` (mAP50-95 of the serving and the adapted model on one set), `–` for an unknown side, '' without the set.
 * @param {AdaptEvaluation | null} set
 */
export function beforeAfter(set) {
  if (!set || (!set.before && !set.after)) return '';
  return `${num(set.before ? set.before.map : undefined, 3)} → ${num(set.after ? set.after.map : undefined, 3)}`;
}

/**
 * Where the job stands in a few characters: epoch of epochs while training, frames labelled while labelling.
 * @param {AdaptJobInfo} j
 */
export function progressText(j) {
  if (j.state === 'labelling' && j.progress) return `${j.progress.done}/${j.progress.total} frames`;
  if (j.epochs) return `${j.epoch ?? 0}/${j.epochs}`;
  return '';
}

/**
 * The job's outcome: accepted or not (with the error code of a failed job), then one line per check or gate.
 * @param {AdaptJobInfo} j
 */
export function resultText(j) {
  if (j.code) return `${j.code}${j.message ? `: ${j.message}` : ''}`;
  if (j.accepted === true) return 'accepted';
  if (j.accepted === false || j.state === 'rejected') return 'rejected';
  return '';
}

/** The panel; it keeps the latest state of every job it was given. */
export class AdaptPanel {
  /** @param {{ body: HTMLElement, empty: HTMLElement, count: HTMLElement, onCancel: (deviceId: string, jobId: string) => void }} o */
  constructor(o) {
    this.o = o;
    /** @type {Map<string, AdaptJobInfo>} by `deviceId/jobId` */
    this.jobs = new Map();
    this.canControl = false;
    o.body.addEventListener('click', (ev) => {
      const b = closestTarget(ev, 'button[data-action="cancel"]');
      const row = b && /** @type {HTMLElement | null} */ (b.closest('[data-job-id]'));
      if (row) o.onCancel(/** @type {string} */ (row.dataset.deviceId), /** @type {string} */ (row.dataset.jobId));
    });
  }

  /** @param {AdaptJobInfo[]} jobs */
  setAll(jobs) {
    this.jobs = new Map(jobs.map((j) => [`${j.deviceId}/${j.jobId}`, j]));
  }

  /**
   * A job's new state (a live event); an older state than the one held is ignored. True when it changed the panel.
   * @param {AdaptJobInfo} job
   */
  upsert(job) {
    const key = `${job.deviceId}/${job.jobId}`;
    const prev = this.jobs.get(key);
    if (prev && prev.ts > job.ts) return false;
    this.jobs.set(key, job);
    return true;
  }

  render() {
    /** @type {Map<string, AdaptJobInfo[]>} */
    const byDevice = new Map();
    for (const j of this.jobs.values()) {
      const list = byDevice.get(j.deviceId);
      if (list) list.push(j);
      else byDevice.set(j.deviceId, [j]);
    }
    const devices = [...byDevice.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    /** @type {HTMLElement[]} */
    const rows = [];
    for (const id of devices) {
      const jobs = /** @type {AdaptJobInfo[]} */ (byDevice.get(id)).sort((a, b) => b.firstSeenAt - a.firstSeenAt || b.jobId.localeCompare(a.jobId));
      rows.push(h('tr', { class: 'adapt-device', 'data-testid': 'adapt-device', 'data-device-id': id }, h('th', { colspan: '10', text: id })));
      for (const j of jobs) rows.push(this.#row(j));
    }
    this.o.body.replaceChildren(...rows);
    this.o.empty.hidden = this.jobs.size > 0;
    const running = [...this.jobs.values()].filter((j) => !FINAL.has(j.state)).length;
    this.o.count.textContent = this.jobs.size ? `${this.jobs.size} job${this.jobs.size === 1 ? '' : 's'}, ${running} running` : '';
  }

  /** @param {AdaptJobInfo} j */
  #row(j) {
    const losses = j.losses ? Object.entries(j.losses).map(([k, v]) => `${k} ${num(v, 4)}`).join(', ') : '';
    const version = j.version ? `${j.version}${j.activated === true ? ' (active)' : j.activated === false ? ' (kept for review)' : ''}` : '';
    const cancel = FINAL.has(j.state)
      ? null
      : h('button', { type: 'button', 'data-action': 'cancel', 'data-testid': 'adapt-cancel', 'data-control': true, disabled: !this.canControl, text: 'Cancel' });
    return h('tr', {
      'data-testid': 'adapt-job', 'data-device-id': j.deviceId, 'data-job-id': j.jobId, 'data-state': j.state,
      title: `${j.base.name}@${j.base.version}${j.teacher ? `, teacher ${j.teacher.name}@${j.teacher.version}` : ''} · updated ${clock(j.ts)}`,
    },
    h('td', { 'data-col': 'job', text: j.jobId }),
    h('td', { 'data-col': 'state', class: `state s-${j.state}`, text: j.state }),
    h('td', { 'data-col': 'progress', class: 'num', text: progressText(j) }),
    h('td', { 'data-col': 'losses', class: 'code', text: losses }),
    h('td', { 'data-col': 'holdout', class: 'num', text: beforeAfter(j.holdout) }),
    h('td', { 'data-col': 'val', class: 'num', text: beforeAfter(j.val) }),
    h('td', { 'data-col': 'result', text: resultText(j) },
      j.reasons.length ? h('ul', { class: 'reasons' }, ...j.reasons.map((r) => h('li', { text: r }))) : null),
    h('td', { 'data-col': 'version', class: 'code', text: version }),
    h('td', { 'data-col': 'fps', class: 'num', text: j.serving ? `${num(j.serving.fpsBefore)} → ${num(j.serving.fpsDuring)}` : '' }),
    h('td', {}, cancel));
  }
}
