import type { AdaptFigures } from './evaluate.js';

/** The acceptance rule of `kd-trainer adapt`, in mAP50-95 (0..1). */
export interface AcceptanceRule {
  /** Least rise on the hold-out (against the teacher's labels). */
  minGain: number;
  /** Most fall on the labelled `--val` images. */
  maxLoss: number;
}

/** One condition of the rule, as it came out. */
export interface AcceptanceCheck {
  name: 'trained' | 'holdout-gain' | 'val-loss';
  passed: boolean;
  /** The change in mAP50-95, adapted − serving. */
  change?: number;
  /** The bound it was held to: −maxLoss or minGain. */
  limit?: number;
  message: string;
}

/** The verdict: accepted when every check passed; `reasons` are the checks' messages. */
export interface AcceptanceDecision {
  accepted: boolean;
  checks: AcceptanceCheck[];
  reasons: string[];
}

const pts = (v: number): string => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`;
// Figures are sums of float32 results: a change equal to a bound must not fail on its last bit.
const EPS = 1e-9;

/**
 * Decides whether an adapted student replaces the serving one: its hold-out mAP50-95 must rise by at
 * least `minGain`, and with labelled `--val` images their mAP50-95 must not fall by more than `maxLoss`.
 * A job whose training left no weights is rejected. A pure function of the figures, so a job can be
 * decided again under another rule without evaluating again.
 * @example
 * const { accepted, reasons } = decideAcceptance(figures, { minGain: 0.01, maxLoss: 0.02 });
 */
export function decideAcceptance(fig: AdaptFigures, rule: AcceptanceRule): AcceptanceDecision {
  const checks: AcceptanceCheck[] = [];
  const h = fig.holdout;
  if (h.adapted === undefined) {
    checks.push({ name: 'trained', passed: false, message: 'no adapted weights: no training step ran (time budget too small?)' });
  } else {
    const gain = h.adapted.map - h.serving.map;
    const passed = gain >= rule.minGain - EPS;
    checks.push({
      name: 'holdout-gain', passed, change: gain, limit: rule.minGain,
      message: `hold-out mAP50-95 ${h.serving.map.toFixed(3)} → ${h.adapted.map.toFixed(3)} (${pts(gain)}) ${passed ? '≥' : '<'} min-gain ${rule.minGain.toFixed(3)}`,
    });
    const v = fig.val;
    if (v?.adapted !== undefined) {
      const change = v.adapted.map - v.serving.map;
      const ok = -change <= rule.maxLoss + EPS;
      checks.push({
        name: 'val-loss', passed: ok, change, limit: -rule.maxLoss,
        message: `val mAP50-95 ${v.serving.map.toFixed(3)} → ${v.adapted.map.toFixed(3)} (${pts(change)}) ${ok ? 'within' : 'falls more than'} max-loss ${rule.maxLoss.toFixed(3)}`,
      });
    }
  }
  return { accepted: checks.every((c) => c.passed), checks, reasons: checks.map((c) => c.message) };
}
