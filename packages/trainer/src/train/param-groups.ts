/**
 * ultralytics smart_optimizer groups, in its order: 0 biases (no decay), 1 weights (decay),
 * 2 BatchNorm weights (no decay). Group 0 is the one that warms up from `warmup_bias_lr`.
 */
export type ParamGroupIndex = 0 | 1 | 2;

/** Which optimizer group a parameter belongs to, from its ultralytics state_dict name. */
export function paramGroupOf(name: string): ParamGroupIndex {
  if (name.endsWith('.bias')) return 0;
  if (/\.bn\.weight$/.test(name)) return 2;
  return 1;
}
