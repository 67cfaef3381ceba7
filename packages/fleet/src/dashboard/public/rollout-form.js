// @ts-check
// The "new rollout" form: turns its fields into the body of POST /api/rollouts, naming the field at fault.

/** @import { RolloutGates, RolloutInput } from '../api-types.js' */

/** A field the operator filled in wrongly. */
export class FormError extends Error {
  /**
   * @param {string} field the spec field at fault (`waves.percents`)
   * @param {string} message
   */
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/**
 * The form's input or select for `selector` (rollout-form in index.html has each one).
 * @param {HTMLFormElement} form
 * @param {string} selector
 */
function control(form, selector) {
  return /** @type {HTMLInputElement | HTMLSelectElement} */ (form.querySelector(selector));
}

/**
 * The input's number, undefined when it is empty.
 * @param {{ value: string }} input
 * @param {string} field
 */
function optionalNumber(input, field) {
  const raw = input.value.trim();
  if (raw === '') return undefined;
  const v = Number(raw);
  if (!Number.isFinite(v)) throw new FormError(field, `${field}: "${raw}" is not a number`);
  return v;
}

/**
 * Splits "a, b c" into ['a', 'b', 'c'].
 * @param {string} text
 */
export function splitList(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/**
 * Reads the form into a rollout input: {package: {name, version}, target, waves, gates, approval, rate}.
 * @param {HTMLFormElement} form
 * @returns {RolloutInput}
 */
export function readRolloutForm(form) {
  const pkg = control(form, '#rf-package').value;
  const at = pkg.lastIndexOf('@');
  if (at <= 0) throw new FormError('package', 'choose a package (push one with kd-fleet models push)');
  const mode = control(form, 'input[name="rf-target"]:checked').value;
  /** @type {RolloutInput['target']} */
  let target;
  if (mode === 'tags') {
    const tags = splitList(control(form, '#rf-tags').value);
    if (tags.length === 0) throw new FormError('target.tags', 'target: enter at least one tag, or choose all devices');
    target = { tags };
  } else target = { all: true };
  const canary = optionalNumber(control(form, '#rf-canary'), 'canary') ?? 1;
  const percents = splitList(control(form, '#rf-percents').value).map(Number);
  if (percents.length === 0 || percents.some((p) => !Number.isFinite(p))) throw new FormError('waves.percents', 'waves: cumulative percentages such as "10, 50, 100"');
  /** @type {RolloutGates} */
  const gates = {};
  const p95 = optionalNumber(control(form, '#rf-max-p95'), 'max p95');
  const fps = optionalNumber(control(form, '#rf-min-fps'), 'min fps');
  const map50 = optionalNumber(control(form, '#rf-min-map50'), 'min mAP50');
  if (p95 !== undefined) gates.maxP95Ms = p95;
  if (fps !== undefined) gates.minFps = fps;
  if (map50 !== undefined) gates.minMap50 = map50;
  /** @type {RolloutInput} */
  const input = {
    package: { name: pkg.slice(0, at), version: pkg.slice(at + 1) },
    target,
    waves: { canary: { count: canary }, percents },
    gates,
    approval: control(form, '#rf-approval').value,
  };
  const rate = optionalNumber(control(form, '#rf-rate'), 'devices per minute');
  if (rate !== undefined) input.rate = { perMinute: rate };
  return input;
}
