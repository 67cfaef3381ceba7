// @ts-check
// Small DOM and formatting helpers shared by the dashboard's views.

/** @typedef {Record<string, string | number | boolean | null | undefined>} Attrs */

/**
 * Creates an element: `h('span', { class: 'x', 'data-testid': 'y' }, 'text', child)`. Attributes that are
 * undefined, null or false are left out; true sets an empty one.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs} [attrs]
 * @param {...(Node | string | null | undefined)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = String(v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== undefined && c !== null) el.append(c);
  return el;
}

/**
 * The element an event happened in, or its nearest ancestor, that matches `selector`; null when none does.
 * @param {Event} ev an event whose target is an element (a click or key in the page)
 * @param {string} selector
 * @returns {HTMLElement | null}
 */
export function closestTarget(ev, selector) {
  return /** @type {Element} */ (ev.target).closest(selector);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Creates an SVG element with attributes.
 * @template {keyof SVGElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string | number>} [attrs]
 * @returns {SVGElementTagNameMap[K]}
 */
export function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * A number with the given decimals, or '–' when unknown.
 * @param {number | null | undefined} value
 */
export function num(value, digits = 1) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–';
}

/**
 * Clock time of a time stamp (ms or ISO string).
 * @param {number | string} ts
 */
export function clock(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString();
}

/**
 * Seconds as "1 h 2 min", "42 s".
 * @param {number | undefined} sec
 */
export function duration(sec) {
  if (typeof sec !== 'number') return '';
  if (sec < 60) return `${Math.round(sec)} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ${Math.round(sec % 60)} s`;
  return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
}

/**
 * Calls `fn` once on the next animation frame however many times it is asked before then.
 * @param {() => void} fn
 * @returns {() => void}
 */
export function frameBatcher(fn) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      fn();
    });
  };
}
