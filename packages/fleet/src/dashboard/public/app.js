// @ts-check
// kd-fleet dashboard entry: loads the fleet's state over the REST API, keeps it live from server-sent events, and
// wires the device table, latency chart, rollouts panel, adaptation jobs panel, models view and operator controls together.

import { AdaptPanel } from './adapt-panel.js';
import { api, ApiError, getToken, onUnauthorized, setToken } from './api.js';
import { duration, frameBatcher, h } from './dom.js';
import { DeviceTable } from './device-table.js';
import { MAX_POINTS, renderLatencyChart } from './latency-chart.js';
import { ModelsPanel } from './models-panel.js';
import { FormError, readRolloutForm, splitList } from './rollout-form.js';
import { RolloutsPanel } from './rollouts-panel.js';

/**
 * @import { AdaptJobInfo, BenchEvent, DeviceDetail, DeviceEvent, DeviceRecord, ExecutionInfo, FleetInfo, LatencyPoint,
 *   PackageSummary, PullStarted, RolloutAction, RolloutDetail, RolloutInfo, WaveInfo } from '../api-types.js'
 */

/**
 * The page's element for `sel` (index.html has every one the dashboard asks for); an input or a form where the
 * caller's type says so.
 * @template {HTMLElement} [E=HTMLElement]
 * @param {string} sel
 * @returns {E}
 */
const $ = (sel) => /** @type {E} */ (document.querySelector(sel));

const ui = {
  info: $('#fleet-info'), fleetName: $('#fleet-name'), live: $('#live-status'), banner: $('#banner'),
  authForm: $('#auth-form'), token: /** @type {HTMLInputElement} */ ($('#token-input')), authState: $('#auth-state'),
};

let serverControls = true;
/** The registry's package count as the header last saw it: a change reloads the models view. */
let packageCount = -1;

/**
 * What a request threw, read as an ApiError: every failure of `api()` is one (an Error from a bug has no code or status).
 * @param {unknown} err
 */
const failure = (err) => /** @type {Partial<ApiError> & { message: string }} */ (err);

/**
 * A refusal as shown next to the button that asked: `409 FLEET_DEVICE_OFFLINE: cam-01 is offline …`.
 * @param {unknown} e
 */
const refusalText = (e) => {
  const err = failure(e);
  return err.code ? `${err.status ? `${err.status} ` : ''}${err.code}: ${err.message}` : String(err.message ?? e);
};

// ---- banner and authentication ----

/**
 * @param {'error'} kind
 * @param {string} text
 */
function showBanner(kind, text) {
  ui.banner.hidden = false;
  ui.banner.dataset.kind = kind;
  ui.banner.textContent = text;
}

function hideBanner() {
  ui.banner.hidden = true;
  ui.banner.textContent = '';
}

const AUTH_TEXT = {
  'read-only': 'read-only (enter the token to control)',
  checking: 'checking token…',
  unlocked: 'controls unlocked',
  refused: '401: token refused',
  'server-read-only': 'server is read-only (no token configured)',
};

/** @param {keyof typeof AUTH_TEXT} state */
function setAuth(state) {
  ui.authState.dataset.state = state;
  ui.authState.textContent = AUTH_TEXT[state];
  const can = state === 'unlocked';
  document.body.classList.toggle('can-control', can);
  for (const el of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('[data-control]'))) {
    if ('disabled' in el) el.disabled = !can;
    el.title = can ? '' : 'Enter the operator token to enable the controls';
  }
  ui.token.disabled = state === 'server-read-only';
  rollouts.canControl = can;
  adaptJobs.canControl = can;
  models.canControl = can;
  if (!can) $('#rollout-form').hidden = true;
  rollouts.render();
  adaptJobs.render();
  models.render();
}

onUnauthorized((err) => {
  setAuth(serverControls ? 'refused' : 'server-read-only');
  showBanner('error', `401 Unauthorized — ${err.code}: ${err.message}. The controls are locked; enter a valid token.`);
});

// GET /api/auth changes nothing: 200 for the right token, 401 (handled by onUnauthorized) for a wrong one.
async function checkToken() {
  if (!serverControls) return setAuth('server-read-only');
  if (!getToken()) return setAuth('read-only');
  setAuth('checking');
  try {
    await api('/api/auth');
    setAuth('unlocked');
    hideBanner();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    setAuth('read-only');
    showBanner('error', failure(err).message);
  }
}

ui.authForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  setToken(ui.token.value.trim());
  ui.token.value = '';
  hideBanner();
  void checkToken();
});
$('#token-clear').addEventListener('click', () => {
  setToken('');
  hideBanner();
  setAuth(serverControls ? 'read-only' : 'server-read-only');
});

// ---- header ----

async function loadInfo() {
  try {
    /** @type {FleetInfo} */
    const info = await api('/api/info');
    ui.fleetName.textContent = info.fleet ?? '';
    document.title = `kd-fleet ${info.fleet ?? ''}`;
    const c = info.counts ?? {};
    const mqtt = info.mqtt ?? {};
    const parts = [
      info.version ? `v${info.version}` : null,
      mqtt.tcp ? `mqtt ${mqtt.tcp}` : null,
      mqtt.ws ? `ws ${mqtt.ws}` : null,
      typeof info.uptimeSec === 'number' ? `up ${duration(info.uptimeSec)}` : null,
      c.devices !== undefined ? `${c.online ?? 0}/${c.devices} online` : null,
      c.packages !== undefined ? `${c.packages} packages` : null,
      c.rollouts !== undefined ? `${c.rollouts} rollouts` : null,
    ].filter(Boolean);
    ui.info.textContent = parts.join(' · ');
    if (c.packages !== undefined && c.packages !== packageCount) {
      // A package pushed (or pulled) meanwhile: the models view and the rollout form follow.
      if (packageCount !== -1) void loadModels();
      packageCount = c.packages;
    }
    const controls = !info.auth || info.auth.controls !== false;
    if (controls !== serverControls) {
      serverControls = controls;
      void checkToken();
    }
  } catch (err) {
    ui.info.textContent = `info unavailable: ${failure(err).message}`;
  }
}

// ---- devices ----

const table = new DeviceTable({
  viewport: $('#device-viewport'), spacer: $('#device-spacer'), head: $('#device-head'), count: $('#device-count'),
  onSelect: (id) => void selectDevice(id),
  onNeedBench: (ids) => needBench(ids),
  onTags: (tags) => {
    const sel = /** @type {HTMLSelectElement} */ ($('#filter-tag'));
    const current = sel.value;
    sel.replaceChildren(h('option', { value: '', text: 'any' }), ...tags.map((t) => h('option', { value: t, text: t })));
    sel.value = tags.includes(current) ? current : '';
  },
});

// Rows in sight whose entry carried no bench figures (a device that appeared after the list was loaded) get them from
// the device's own resource, a few at a time.
/** @type {Set<string>} */
const benchQueue = new Set();
let benchActive = 0;
/** @param {string[]} ids */
function needBench(ids) {
  for (const id of ids) benchQueue.add(id);
  pumpBench();
}
function pumpBench() {
  while (benchActive < 4 && benchQueue.size > 0) {
    const id = /** @type {string} */ (benchQueue.values().next().value);
    benchQueue.delete(id);
    benchActive++;
    /** @type {Promise<DeviceDetail>} */ (api(`/api/devices/${encodeURIComponent(id)}`))
      .then((d) => table.bench(id, d.bench ?? null))
      .catch(() => {})
      .finally(() => {
        benchActive--;
        pumpBench();
      });
  }
}

async function loadDevices() {
  try {
    table.setAll(await api('/api/devices'));
  } catch (err) {
    showBanner('error', `devices: ${failure(err).message}`);
  }
}

/** @param {Event} ev an input's or a select's event */
const valueOf = (ev) => /** @type {HTMLInputElement | HTMLSelectElement} */ (ev.target).value;
$('#filter-tag').addEventListener('change', (ev) => table.setFilter({ tag: valueOf(ev) }));
$('#filter-online').addEventListener('change', (ev) => table.setFilter({ online: valueOf(ev) }));
$('#filter-text').addEventListener('input', (ev) => table.setFilter({ text: valueOf(ev) }));

/** @type {string | null} */
let selectedDevice = null;
/** @type {LatencyPoint[]} the selected device's latency history */
let points = [];
const redrawChart = frameBatcher(() => renderLatencyChart($('#latency-chart'), points));

/** @param {string} id */
async function selectDevice(id) {
  selectedDevice = id;
  table.select(id);
  const panel = $('#device-detail');
  panel.hidden = false;
  panel.dataset.deviceId = id;
  $('#detail-id').textContent = id;
  points = [];
  renderLatencyChart($('#latency-chart'), points);
  try {
    const [detail, history] = await Promise.all([
      /** @type {Promise<DeviceDetail>} */ (api(`/api/devices/${encodeURIComponent(id)}`)),
      /** @type {Promise<LatencyPoint[]>} */ (api(`/api/devices/${encodeURIComponent(id)}/latency?limit=${MAX_POINTS}`)),
    ]);
    if (selectedDevice !== id) return;
    const d = detail.device;
    const hw = d.status && d.status.hardware;
    const facts = [
      d.online ? 'online' : 'offline',
      d.agentVersion ? `agent ${d.agentVersion}` : null,
      hw && hw.jetson ? hw.jetson.model : hw ? `${hw.platform}/${hw.arch}` : null,
      d.activeModel ? `${d.activeModel.name}@${d.activeModel.version}` : 'no model',
      d.deviceKey ? `key ${d.deviceKey.keyId}` : null,
      // A device reporting another key than the pinned one: shown until an operator accepts one (kd-fleet devices accept-key).
      d.deviceKey && d.deviceKey.mismatch ? `KEY MISMATCH: reports ${d.deviceKey.mismatch.keyId}` : null,
    ].filter(Boolean);
    $('#detail-facts').textContent = facts.join(' · ');
    /** @type {HTMLInputElement} */ ($('#tags-input')).value = d.tags.join(', ');
    points = history;
    redrawChart();
  } catch (err) {
    showBanner('error', `device ${id}: ${failure(err).message}`);
  }
}

$('#detail-close').addEventListener('click', () => {
  selectedDevice = null;
  table.select(null);
  $('#device-detail').hidden = true;
});

$('#tags-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!selectedDevice) return;
  try {
    const tags = splitList(/** @type {HTMLInputElement} */ ($('#tags-input')).value);
    /** @type {DeviceRecord} */
    const d = await api(`/api/devices/${encodeURIComponent(selectedDevice)}/tags`, { method: 'PUT', body: { tags } });
    table.change({ kind: 'tags', deviceId: d.id, device: d });
  } catch (e) {
    const err = failure(e);
    if (err.status !== 401) showBanner('error', `tags: ${err.code}: ${err.message}`);
  }
});

// ---- rollouts ----

const rollouts = new RolloutsPanel({
  list: $('#rollout-list'), detail: $('#rollout-detail'),
  onSelect: (id) => void selectRollout(id),
  onAction: (id, action) => void rolloutAction(id, action),
});
const renderRollouts = frameBatcher(() => rollouts.render());

async function loadRollouts() {
  try {
    rollouts.setAll(await api('/api/rollouts'));
    if (rollouts.selectedId) await selectRollout(rollouts.selectedId);
    renderRollouts();
  } catch (err) {
    showBanner('error', `rollouts: ${failure(err).message}`);
  }
}

/** @param {string} id */
async function selectRollout(id) {
  rollouts.select(id);
  renderRollouts();
  try {
    /** @type {RolloutDetail} */
    const detail = await api(`/api/rollouts/${encodeURIComponent(id)}`);
    if (rollouts.selectedId !== id) return;
    rollouts.setDetail(detail);
    renderRollouts();
  } catch (err) {
    showBanner('error', `rollout ${id}: ${failure(err).message}`);
  }
}

/**
 * @param {string} id
 * @param {RolloutAction} action
 */
async function rolloutAction(id, action) {
  try {
    /** @type {RolloutInfo | undefined} */
    const info = await api(`/api/rollouts/${encodeURIComponent(id)}/${action}`, { method: 'POST', body: action === 'abort' ? { reason: 'aborted from the dashboard' } : {} });
    if (info && info.id) rollouts.upsert(info);
    hideBanner();
    renderRollouts();
  } catch (e) {
    const err = failure(e);
    if (err.status !== 401) showBanner('error', `${action}: ${err.code}: ${err.message}`);
  }
}

// The rollout form offers what a rollout may send: not a teacher (pushed to the devices that adapt, never served), nor
// an adapted package pulled from a device and not yet promoted (the server refuses both).
function fillPackageSelect() {
  const sel = /** @type {HTMLSelectElement} */ ($('#rf-package'));
  const current = sel.value;
  const rollable = models.rollable();
  sel.replaceChildren(...rollable.map((m) => h('option', { value: `${m.name}@${m.version}`, text: `${m.name}@${m.version}` })));
  if (rollable.some((m) => `${m.name}@${m.version}` === current)) sel.value = current;
  if (rollable.length === 0) sel.append(h('option', { value: '', text: 'no packages pushed yet' }));
}

// ---- models ----

const models = new ModelsPanel({
  body: $('#model-body'), empty: $('#model-empty'), count: $('#model-count'),
  onPromote: (name, version) => void promoteModel(name, version),
});
const renderModels = frameBatcher(() => models.render());

async function loadModels() {
  try {
    /** @type {PackageSummary[]} */
    const all = await api('/api/models');
    models.setAll(all);
    fillPackageSelect();
    renderModels();
  } catch (err) {
    showBanner('error', `models: ${failure(err).message}`);
  }
}

// Several job events in a row (a pull's answer, then the stored package) reload the list once.
let modelsTimer = 0;
function loadModelsSoon() {
  if (!modelsTimer) modelsTimer = setTimeout(() => {
    modelsTimer = 0;
    void loadModels();
  }, 200);
}

/**
 * Promote a pulled adapted package: re-signed by the server with the fleet's key, then rolled out like any model.
 * @param {string} name
 * @param {string} version
 */
async function promoteModel(name, version) {
  models.promoteRequest(name, version, { sending: true });
  renderModels();
  try {
    /** @type {PackageSummary} */
    const promoted = await api(`/api/models/${encodeURIComponent(name)}/${encodeURIComponent(version)}/promote`, { method: 'POST' });
    models.promoteRequest(name, version, { sending: false });
    models.upsert(promoted);
    fillPackageSelect();
  } catch (e) {
    models.promoteRequest(name, version, { sending: false, error: refusalText(e) });
  }
  renderModels();
}

$('#new-rollout-toggle').addEventListener('click', () => {
  const form = $('#rollout-form');
  form.hidden = !form.hidden;
  if (!form.hidden) void loadModels();
});
$('#rf-cancel').addEventListener('click', () => {
  $('#rollout-form').hidden = true;
});
$('#rf-tags').addEventListener('focus', () => {
  /** @type {HTMLInputElement} */ ($('input[name="rf-target"][value="tags"]')).checked = true;
});

$('#rollout-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = /** @type {HTMLFormElement} */ (ev.target);
  const error = $('#rf-error');
  error.hidden = true;
  let input;
  try {
    input = readRolloutForm(form);
  } catch (err) {
    error.hidden = false;
    error.textContent = err instanceof FormError ? err.message : String(err);
    return;
  }
  try {
    /** @type {{ id: string }} */
    const { id } = await api('/api/rollouts', { method: 'POST', body: input });
    form.hidden = true;
    await loadRollouts();
    await selectRollout(id);
  } catch (err) {
    error.hidden = false;
    error.textContent = err instanceof ApiError ? `${err.status} ${err.code}: ${err.message}` : String(err);
  }
});

// ---- adaptation jobs ----

const adaptJobs = new AdaptPanel({
  body: $('#adapt-body'), empty: $('#adapt-empty'), count: $('#adapt-count'),
  onCancel: (deviceId, jobId) => void cancelAdapt(deviceId, jobId),
  onPull: (deviceId, jobId) => void pullAdapt(deviceId, jobId),
});
const renderAdapt = frameBatcher(() => adaptJobs.render());

async function loadAdaptJobs() {
  try {
    adaptJobs.setAll(await api('/api/adapt-jobs'));
    renderAdapt();
  } catch (err) {
    showBanner('error', `adaptation jobs: ${failure(err).message}`);
  }
}

/**
 * @param {string} deviceId
 * @param {string} jobId
 */
async function cancelAdapt(deviceId, jobId) {
  try {
    await api(`/api/devices/${encodeURIComponent(deviceId)}/adapt-jobs/${encodeURIComponent(jobId)}/cancel`, { method: 'POST' });
    hideBanner();
  } catch (e) {
    const err = failure(e);
    if (err.status !== 401) showBanner('error', `cancel ${jobId}: ${err.code}: ${err.message}`);
  }
}

/**
 * Ask a device to upload a succeeded job's adapted package. The answer means the command is sent; the job's `pull`
 * then follows over the live stream (requested, uploading, pulled or failed with the reason).
 * @param {string} deviceId
 * @param {string} jobId
 */
async function pullAdapt(deviceId, jobId) {
  adaptJobs.pullRequest(deviceId, jobId, { sending: true });
  renderAdapt();
  try {
    /** @type {PullStarted} */
    const started = await api(`/api/devices/${encodeURIComponent(deviceId)}/adapt-jobs/${encodeURIComponent(jobId)}/pull`, { method: 'POST' });
    // Shown as requested until the live stream brings the job's record of this command (which may have come first).
    adaptJobs.pullRequest(deviceId, jobId, { sending: false, commandId: started.commandId });
  } catch (e) {
    adaptJobs.pullRequest(deviceId, jobId, { sending: false, error: refusalText(e) });
  }
  renderAdapt();
}

/**
 * A job's pull brought a package (or promoted it) that the models view does not show yet.
 * @param {AdaptJobInfo} j
 */
function pullChangesModels(j) {
  const p = j.pull && j.pull.package;
  return p !== null && p !== undefined && !models.holds(p);
}

// ---- live updates ----

// The header's counts follow rollouts without polling on every event.
let infoTimer = 0;
function refreshInfoSoon() {
  if (!infoTimer) infoTimer = setTimeout(() => {
    infoTimer = 0;
    void loadInfo();
  }, 1000);
}

/** What each live event does with its payload. */
const SSE_EVENTS = {
  /** @param {DeviceEvent} change */
  device: (change) => table.change(change),
  /** @param {BenchEvent} b */
  bench: (b) => {
    table.bench(b.deviceId, b);
    if (b.deviceId === selectedDevice) {
      points = [...points, { ts: b.ts, p50: b.p50, p95: b.p95, fps: b.fps }].slice(-MAX_POINTS);
      redrawChart();
    }
  },
  /** @param {RolloutInfo} r */
  rollout: (r) => {
    rollouts.upsert(r);
    renderRollouts();
    refreshInfoSoon();
  },
  /** @param {WaveInfo} w */
  wave: (w) => {
    if (rollouts.wave(w)) renderRollouts();
  },
  /** @param {ExecutionInfo} e */
  execution: (e) => {
    if (rollouts.execution(e)) renderRollouts();
  },
  /** @param {AdaptJobInfo} j */
  adapt: (j) => {
    if (adaptJobs.upsert(j)) renderAdapt();
    if (pullChangesModels(j)) loadModelsSoon();
  },
};

function connectLive() {
  const es = new EventSource('/api/events');
  let lost = false;
  for (const [name, fn] of Object.entries(SSE_EVENTS)) {
    es.addEventListener(name, (ev) => {
      try {
        fn(JSON.parse(ev.data));
      } catch {
        // one bad event must not stop the others
      }
    });
  }
  es.addEventListener('open', () => {
    ui.live.dataset.state = 'live';
    ui.live.textContent = 'live';
    // Whatever happened while the stream was down is only in the REST state.
    if (lost) void Promise.all([loadDevices(), loadRollouts(), loadAdaptJobs(), loadModels(), loadInfo()]);
    lost = false;
  });
  es.addEventListener('error', () => {
    lost = true;
    ui.live.dataset.state = 'reconnecting';
    ui.live.textContent = 'reconnecting…';
  });
}

// ---- start ----

setAuth('read-only');
connectLive();
await loadInfo();
void checkToken();
await Promise.all([loadDevices(), loadRollouts(), loadAdaptJobs(), loadModels()]);
setInterval(() => void loadInfo(), 10_000);
document.body.dataset.ready = 'true';
