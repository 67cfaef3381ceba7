import type * as tf from '../tf.js';

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

/** Splits named parameters into the three groups, keeping names. */
export function paramGroups(params: Map<string, tf.Variable>): [string[], string[], string[]] {
  const g: [string[], string[], string[]] = [[], [], []];
  for (const name of params.keys()) g[paramGroupOf(name)].push(name);
  return g;
}
