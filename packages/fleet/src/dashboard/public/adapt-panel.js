// @ts-check
// The adaptation jobs panel (issue 16): every device's on-device adaptation jobs, live from the `adapt` events: state,
// epoch, the last epoch's losses, hold-out and val mAP50-95 before → after, the decision with its reasons, the adapted
// version and whether it serves; a cancel button on a job still running, and a pull button on a succeeded job whose
// adapted package is not in the registry yet, with the pull's progress and errors in the job's row.

import { closestTarget, clock, h, num } from './dom.js';

/** @import { AdaptEvaluation, AdaptJobInfo, AdaptPullInfo } from '../api-types.js' */

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

/**
 * Where the job's pull stands, in words: `upload requested`, `uploading…`, `pulled, not promoted`, `pulled, promoted`,
 * or why it failed (the fleet's refusal of the upload, else the device's error); '' when it was never pulled.
 * @param {AdaptPullInfo | null} p
 */
export function pullText(p) {
  if (!p) return '';
  switch (p.state) {
    case 'requested': return 'upload requested';
    case 'uploading': return 'uploading…';
    case 'expired': return 'upload URL expired';
    case 'failed': return `pull failed: ${p.code ?? ''}${p.message ? `: ${p.message}` : ''}`;
    case 'pulled': return p.package && p.package.promotedAt !== null ? 'pulled, promoted' : 'pulled, not promoted';
  }
}

/**
 * Whether a job's adapted package can be pulled: a succeeded job (accepted, whether it serves or was kept for review)
 * with a version, never pulled or whose last pull failed or expired.
 * @param {AdaptJobInfo} j
 */
export function canPull(j) {
  if (j.state !== 'succeeded' || !j.version) return false;
  return !j.pull || j.pull.state === 'failed' || j.pull.state === 'expired';
}

/** The panel; it keeps the latest state of every job it was given, and the pulls the operator asked for from this page. */
export class AdaptPanel {
  /**
   * @param {{ body: HTMLElement, empty: HTMLElement, count: HTMLElement, onCancel: (deviceId: string, jobId: string) => void,
   *   onPull: (deviceId: string, jobId: string) => void }} o
   */
  constructor(o) {
    this.o = o;
    /** @type {Map<string, AdaptJobInfo>} by `deviceId/jobId` */
    this.jobs = new Map();
    this.canControl = false;
    /** @type {Set<string>} jobs whose pull request is on its way to the server */
    this.pulling = new Set();
    /** @type {Map<string, string>} the server's refusal of a pull request, shown in the job's row until the next try */
    this.pullErrors = new Map();
    /**
     * @type {Map<string, string>} pulls the server took (their command id) that no job state has mentioned yet: shown as
     * requested until the live stream brings the job's own record of them
     */
    this.requested = new Map();
    o.body.addEventListener('click', (ev) => {
      const b = closestTarget(ev, 'button[data-action]');
      const row = b && /** @type {HTMLElement | null} */ (b.closest('[data-job-id]'));
      if (!b || !row) return;
      const deviceId = /** @type {string} */ (row.dataset.deviceId);
      const jobId = /** @type {string} */ (row.dataset.jobId);
      if (b.dataset.action === 'cancel') o.onCancel(deviceId, jobId);
      else if (b.dataset.action === 'pull') o.onPull(deviceId, jobId);
    });
  }

  /**
   * A pull request of this page: `sending` while it is on its way, then done: taken (the command id the server sent)
   * or refused (`error`, the server's refusal).
   * @param {string} deviceId
   * @param {string} jobId
   * @param {{ sending: boolean, error?: string, commandId?: string }} s
   */
  pullRequest(deviceId, jobId, s) {
    const key = `${deviceId}/${jobId}`;
    if (s.sending) {
      this.pulling.add(key);
      this.pullErrors.delete(key);
      return;
    }
    this.pulling.delete(key);
    if (s.error) this.pullErrors.set(key, s.error);
    const job = this.jobs.get(key);
    if (s.commandId && !(job && job.pull && job.pull.commandId === s.commandId)) this.requested.set(key, s.commandId);
  }

  /**
   * The job's pull as this page knows it: the server's record, or `requested` for a pull it took that the live stream
   * has not brought back yet.
   * @param {AdaptJobInfo} j
   * @returns {AdaptPullInfo | null}
   */
  pullOf(j) {
    const commandId = this.requested.get(`${j.deviceId}/${j.jobId}`);
    if (commandId === undefined) return j.pull;
    return { state: 'requested', commandId, requestedAt: null, expiresAt: null, code: null, message: null, package: null };
  }

  /** @param {AdaptJobInfo[]} jobs */
  setAll(jobs) {
    this.jobs = new Map(jobs.map((j) => [`${j.deviceId}/${j.jobId}`, j]));
    for (const [key, commandId] of this.requested) {
      const j = this.jobs.get(key);
      if (j && j.pull && j.pull.commandId === commandId) this.requested.delete(key);
    }
  }

  /**
   * A job's new state (a live event); an older state than the one held is ignored. True when it changed the panel.
   * @param {AdaptJobInfo} job
   */
  upsert(job) {
    const key = `${job.deviceId}/${job.jobId}`;
    const prev = this.jobs.get(key);
    if (prev && prev.ts > job.ts) return false;
    // A pull this page did not see refused (another tab, the CLI) replaces an old refusal shown here.
    if (job.pull && (!prev || !prev.pull || prev.pull.commandId !== job.pull.commandId)) this.pullErrors.delete(key);
    if (job.pull && job.pull.commandId === this.requested.get(key)) this.requested.delete(key);
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
      rows.push(h('tr', { class: 'adapt-device', 'data-testid': 'adapt-device', 'data-device-id': id }, h('th', { colspan: '11', text: id })));
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
    const key = `${j.deviceId}/${j.jobId}`;
    const cancel = FINAL.has(j.state)
      ? null
      : h('button', { type: 'button', 'data-action': 'cancel', 'data-testid': 'adapt-cancel', 'data-control': true, disabled: !this.canControl, text: 'Cancel' });
    const sending = this.pulling.has(key);
    const state = this.pullOf(j);
    // While the request is on its way the button says so, unless the live stream already brought the fleet's record of
    // the pull (the answer and the event race): then the record shows, as after the answer.
    const pull = canPull({ ...j, pull: state }) || (sending && !state)
      ? h('button', {
        type: 'button', 'data-action': 'pull', 'data-testid': 'adapt-pull', 'data-control': true, disabled: !this.canControl || sending,
        'aria-busy': sending ? 'true' : null, text: sending ? 'Pulling…' : 'Pull',
        title: `Upload ${j.base.name}@${j.version} from ${j.deviceId} into the registry (signed by the device; promote it to roll it out)`,
      })
      : null;
    const error = this.pullErrors.get(key);
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
    h('td', { 'data-col': 'pull' },
      state ? h('span', { 'data-testid': 'adapt-pull-state', 'data-pull': state.state, class: `pull p-${state.state}`, text: pullText(state) }) : null,
      error ? h('div', { class: 'action-error', 'data-testid': 'adapt-pull-error', role: 'alert', text: error }) : null),
    h('td', { class: 'actions' }, cancel, pull));
  }
}
