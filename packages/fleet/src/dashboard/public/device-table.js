// @ts-check
// The device table: every device kept in a Map, a filtered and sorted view of them, and only the rows in sight
// in the DOM (a small pool of absolutely placed rows reused while scrolling), so 1,000+ devices stay fast.
// Live changes update the Map and are drawn once per animation frame.

import { closestTarget, frameBatcher, h, num } from './dom.js';

/** @import { BenchSummary, DeviceEvent, DeviceRecord } from '../api-types.js' */

/**
 * One device as the table shows it.
 * @typedef {object} Row
 * @property {string} id
 * @property {boolean} online
 * @property {string[]} tags
 * @property {string} model `name@version`, '' without one
 * @property {string} serves what serves the active model as its status says (`model.int8.u8s8.onnx · int8 · onnxruntime`), '' when not reported
 * @property {number} lastSeen
 * @property {number | null} p50
 * @property {number | null} p95
 * @property {number | null} fps
 * @property {number | null} powerW
 * @property {number | null} tempC
 * @property {number} benchTs the bench figures' report time, ms (0: none yet)
 * @property {boolean} benchKnown whether the latest bench report was looked up (a device may have none)
 * @property {DeviceRecord} record
 * @property {number} version bumped on every change, so a pooled row element knows to redraw
 */

/** @typedef {'id' | 'online' | 'model' | 'p50' | 'p95' | 'fps' | 'powerW' | 'tempC'} SortKey */

/** A pooled row element; `_version` is the version of the Row it shows. @typedef {HTMLDivElement & { _version?: number }} RowElement */

/**
 * @typedef {object} DeviceTableOptions
 * @property {HTMLElement} viewport the scrolling element the rows are placed in
 * @property {HTMLElement} spacer sized to every row, so the scroll bar is the whole list's
 * @property {HTMLElement} head the column headers (`[data-sort]` buttons)
 * @property {HTMLElement} count where the device counts are written
 * @property {(id: string) => void} onSelect
 * @property {(ids: string[]) => void} onNeedBench rows in sight whose bench figures were never looked up
 * @property {(tags: string[]) => void} onTags every tag in use, sorted, whenever that set may have changed
 */

/** Row height in px; must match `.row` in style.css. */
export const ROW_HEIGHT = 30;
// Rows drawn above and below the visible ones, so a fast scroll shows no gap before the next frame.
const OVERSCAN = 6;

const COLUMNS = ['id', 'online', 'tags', 'model', 'p50', 'p95', 'fps', 'powerW', 'tempC'];
const NUMERIC = new Set(['p50', 'p95', 'fps', 'powerW', 'tempC']);

/**
 * The table's row model of a DeviceRecord (bench figures kept from before unless the record carries them).
 * @param {DeviceRecord & { bench?: BenchSummary | null }} record a record, with `bench` when it comes from the list
 * @param {Row | undefined} previous
 * @returns {Row}
 */
function fromRecord(record, previous) {
  const m = record.activeModel ?? record.status?.activeModel ?? null;
  const row = {
    id: record.id,
    online: Boolean(record.online),
    tags: Array.isArray(record.tags) ? record.tags : [],
    model: m ? `${m.name}@${m.version}` : '',
    serves: m ? servesText(m) : '',
    lastSeen: record.lastSeen ?? 0,
    p50: previous?.p50 ?? null,
    p95: previous?.p95 ?? null,
    fps: previous?.fps ?? null,
    powerW: previous?.powerW ?? null,
    tempC: previous?.tempC ?? null,
    benchTs: previous?.benchTs ?? 0,
    benchKnown: previous?.benchKnown ?? false,
    record,
    version: (previous?.version ?? 0) + 1,
  };
  if (record.bench !== undefined) applyBench(row, record.bench);
  return row;
}

/**
 * The served file, precision and runtime of an active model (issue 17: one package, a file per target), joined by
 * ` · `; the in-process/runner path (`serving`) is named instead of `runtime` when the agent reports it.
 * @param {import('../api-types.js').ModelRef} m
 * @returns {string}
 */
function servesText(m) {
  return [m.file, m.precision, m.serving ?? m.runtime].filter((v) => typeof v === 'string' && v !== '').join(' · ');
}

/**
 * Copies a bench report's figures (a device list's `bench`, a BenchRecord, a `bench` event, or null for none)
 * into a row; older reports are ignored.
 * @param {Row} row
 * @param {BenchSummary | null} bench
 */
function applyBench(row, bench) {
  row.benchKnown = true;
  if (!bench) return;
  const ts = typeof bench.ts === 'number' ? bench.ts : Date.parse(bench.ts ?? '') || 0;
  if (ts && ts < row.benchTs) return;
  row.benchTs = ts;
  row.p50 = bench.p50 ?? row.p50;
  row.p95 = bench.p95 ?? row.p95;
  row.fps = bench.fps ?? row.fps;
  const mw = bench.powerMw;
  if (typeof mw === 'number') row.powerW = mw / 1000;
  const t = bench.tempC;
  if (typeof t === 'number' && Number.isFinite(t)) row.tempC = t;
}

/**
 * @param {Row} a
 * @param {Row} b
 * @param {SortKey} key
 */
function compare(a, b, key) {
  const x = a[key];
  const y = b[key];
  if (NUMERIC.has(key)) {
    // unknown figures sort after known ones whichever the direction (handled by the caller)
    return Number(x) - Number(y);
  }
  if (key === 'online') return Number(y) - Number(x);
  return String(x).localeCompare(String(y), undefined, { numeric: true });
}

/** The virtualised device table. */
export class DeviceTable {
  /** @param {DeviceTableOptions} options */
  constructor(options) {
    this.o = options;
    /** @type {Map<string, Row>} */
    this.devices = new Map();
    /** @type {Row[]} the filtered and sorted rows */
    this.view = [];
    /** @type {{ key: SortKey, dir: number }} 1 ascending, -1 descending */
    this.sort = { key: 'id', dir: 1 };
    /** @type {{ tag: string, online: '' | 'true' | 'false' | string, text: string }} */
    this.filter = { tag: '', online: '', text: '' };
    /** @type {string | null} */
    this.selectedId = null;
    /** @type {RowElement[]} */
    this.pool = [];
    this.viewDirty = true;
    this.tagsDirty = true;
    /** @type {Set<string>} devices whose bench figures were asked for */
    this.requested = new Set();
    this.schedule = frameBatcher(() => this.flush());
    options.viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    options.viewport.addEventListener('click', (ev) => {
      const row = closestTarget(ev, '.row');
      if (row && row.dataset.id) this.o.onSelect(row.dataset.id);
    });
    options.viewport.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter') return;
      const row = closestTarget(ev, '.row');
      if (row && row.dataset.id) this.o.onSelect(row.dataset.id);
    });
    options.head.addEventListener('click', (ev) => {
      const b = closestTarget(ev, '[data-sort]');
      if (!b) return;
      const key = /** @type {SortKey} */ (b.dataset.sort);
      this.sort = this.sort.key === key ? { key, dir: -this.sort.dir } : { key, dir: NUMERIC.has(key) ? -1 : 1 };
      this.viewDirty = true;
      this.schedule();
    });
    new ResizeObserver(() => this.schedule()).observe(options.viewport);
  }

  /**
   * Replaces every device (initial load, resync after a reconnect).
   * @param {Array<DeviceRecord & { bench: BenchSummary | null }>} records GET /api/devices
   */
  setAll(records) {
    const next = new Map();
    for (const r of records) next.set(r.id, fromRecord(r, this.devices.get(r.id)));
    this.devices = next;
    this.viewDirty = true;
    this.tagsDirty = true;
    this.schedule();
  }

  /**
   * A `device` event: the device as it is now, or gone.
   * @param {DeviceEvent} change
   */
  change(change) {
    const id = change.deviceId;
    if (!change.device || change.kind === 'removed') {
      if (this.devices.delete(id)) {
        this.viewDirty = true;
        this.tagsDirty = true;
      }
    } else {
      const prev = this.devices.get(id);
      const row = fromRecord(change.device, prev);
      if (!prev || prev.online !== row.online || prev.model !== row.model || prev.serves !== row.serves || prev.tags.join() !== row.tags.join()) this.viewDirty = true;
      if (!prev || prev.tags.join() !== row.tags.join()) this.tagsDirty = true;
      // In place: the current view holds this very object until it is next recomputed.
      if (prev) Object.assign(prev, row);
      else this.devices.set(id, row);
    }
    this.schedule();
  }

  /**
   * A bench report for one device (a `bench` event, or the latest one fetched for a row in sight; null: it has none).
   * @param {string} deviceId
   * @param {BenchSummary | null} bench
   */
  bench(deviceId, bench) {
    const row = this.devices.get(deviceId);
    if (!row) return;
    applyBench(row, bench);
    row.version++;
    if (NUMERIC.has(this.sort.key)) this.viewDirty = true;
    this.schedule();
  }

  /** @param {Partial<DeviceTable['filter']>} filter */
  setFilter(filter) {
    this.filter = { ...this.filter, ...filter };
    this.viewDirty = true;
    this.schedule();
  }

  /** @param {string | null} id */
  select(id) {
    this.selectedId = id;
    for (const el of this.pool) el.classList.toggle('selected', el.dataset.id === id);
  }

  #recompute() {
    const { tag, online, text } = this.filter;
    const q = text.trim().toLowerCase();
    const rows = [];
    for (const r of this.devices.values()) {
      if (tag && !r.tags.includes(tag)) continue;
      if (online !== '' && String(r.online) !== online) continue;
      if (q && !r.id.toLowerCase().includes(q) && !r.model.toLowerCase().includes(q) && !r.serves.toLowerCase().includes(q) && !r.tags.some((t) => t.includes(q))) continue;
      rows.push(r);
    }
    const { key, dir } = this.sort;
    const numeric = NUMERIC.has(key);
    rows.sort((a, b) => {
      if (numeric) {
        const ua = a[key] === null;
        const ub = b[key] === null;
        if (ua || ub) return ua === ub ? a.id.localeCompare(b.id, undefined, { numeric: true }) : ua ? 1 : -1;
      }
      return dir * compare(a, b, key) || a.id.localeCompare(b.id, undefined, { numeric: true });
    });
    this.view = rows;
  }

  /** Draws what changed since the last frame: the view if membership or order may have moved, then the rows in sight. */
  flush() {
    if (this.viewDirty) {
      this.#recompute();
      this.viewDirty = false;
      for (const b of /** @type {NodeListOf<HTMLElement>} */ (this.o.head.querySelectorAll('[data-sort]'))) {
        const on = b.dataset.sort === this.sort.key;
        b.setAttribute('aria-sort', on ? (this.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
      }
    }
    if (this.tagsDirty) {
      this.tagsDirty = false;
      /** @type {Set<string>} */
      const tags = new Set();
      for (const r of this.devices.values()) for (const t of r.tags) tags.add(t);
      this.o.onTags([...tags].sort());
    }
    let online = 0;
    for (const r of this.devices.values()) if (r.online) online++;
    this.o.count.textContent = `${this.devices.size} devices · ${online} online · ${this.view.length} shown`;
    this.o.count.dataset.total = String(this.devices.size);
    this.o.count.dataset.online = String(online);
    this.o.count.dataset.shown = String(this.view.length);
    this.#render();
  }

  #render() {
    const vp = this.o.viewport;
    this.o.spacer.style.height = `${this.view.length * ROW_HEIGHT}px`;
    const height = vp.clientHeight || 600;
    const visible = Math.ceil(height / ROW_HEIGHT);
    // The browser clamps scrollTop after a shrink only on its next layout; clamp here so a filter never draws an empty frame.
    const top = Math.min(vp.scrollTop, Math.max(0, this.view.length * ROW_HEIGHT - height));
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const count = Math.min(this.view.length - first, visible + 2 * OVERSCAN);
    while (this.pool.length < Math.max(0, count)) this.pool.push(this.#newRow());
    /** @type {string[]} */
    const missing = [];
    this.pool.forEach((el, i) => {
      const row = this.view[first + i];
      if (i >= count || !row) {
        el.hidden = true;
        el.dataset.id = '';
        return;
      }
      el.hidden = false;
      el.style.transform = `translateY(${(first + i) * ROW_HEIGHT}px)`;
      if (el.dataset.id !== row.id || el._version !== row.version) this.#fill(el, row);
      if (!row.benchKnown && !this.requested.has(row.id)) {
        this.requested.add(row.id);
        missing.push(row.id);
      }
    });
    if (missing.length > 0) this.o.onNeedBench(missing);
  }

  /** @returns {RowElement} */
  #newRow() {
    const el = h('div', { class: 'row', role: 'row', 'data-testid': 'device-row', tabindex: '-1' });
    for (const c of COLUMNS) el.append(h('span', { role: 'cell', class: `c-${c}${NUMERIC.has(c) ? ' num' : ''}`, 'data-col': c }));
    this.o.viewport.append(el);
    return el;
  }

  /**
   * @param {RowElement} el
   * @param {Row} row
   */
  #fill(el, row) {
    el.dataset.id = row.id;
    el._version = row.version;
    el.dataset.online = String(row.online);
    el.classList.toggle('selected', row.id === this.selectedId);
    el.classList.toggle('offline', !row.online);
    const cells = el.children;
    cells[0].textContent = row.id;
    cells[1].textContent = row.online ? 'online' : 'offline';
    cells[1].className = `c-online ${row.online ? 'on' : 'off'}`;
    cells[2].textContent = row.tags.join(', ');
    // Which file serves (issue 17) after the version: a mixed fleet shows each device's own file of one package.
    cells[3].textContent = row.model ? (row.serves ? `${row.model} · ${row.serves}` : row.model) : '–';
    // An adapted version (shapes@1.0.0+adapt.cam-01.1) is often wider than the column: the whole of it on hover.
    /** @type {HTMLElement} */ (cells[3]).title = row.serves ? `${row.model}\nserves ${row.serves}` : row.model;
    cells[4].textContent = num(row.p50, 2);
    cells[5].textContent = num(row.p95, 2);
    cells[6].textContent = num(row.fps, 1);
    cells[7].textContent = num(row.powerW, 2);
    cells[8].textContent = num(row.tempC, 1);
  }
}
