import type { AdaptRecipe, ManifestAdaptRecipe } from '@kd-edge/core';
import type { AdaptChildRecipe } from './adapt-child.js';

/** The recipe values a job resolves: kd-trainer's options, and the memory budget the agent meets with the batch. */
export type AdaptRecipeValues = AdaptChildRecipe & { memoryBudgetMb?: number };
/** A recipe key. */
export type AdaptRecipeKey = keyof AdaptRecipeValues;

/** The recipe keys, in the order a job's record lists them. */
export const ADAPT_RECIPE_VALUE_KEYS: readonly AdaptRecipeKey[] = [
  'epochs', 'imgsz', 'lr0', 'pseudoConf', 'holdout', 'timeBudgetSec', 'memoryBudgetMb', 'minGain', 'maxLoss',
];

/**
 * Where a resolved value came from: the `adapt` command's `recipe`, the serving package's manifest `adapt.recipe`, the
 * agent's `adapt:` configuration, or (image size only) the serving model's input size. A key with none is left to
 * kd-trainer's default and not passed.
 */
export type AdaptRecipeSource = 'command' | 'package' | 'config' | 'model';

/** What {@link resolveAdaptRecipe} needs. */
export interface ResolveAdaptRecipeOptions {
  /** The command's `recipe` (absent for a scheduled job). */
  command?: AdaptRecipe | undefined;
  /** The serving package's manifest `adapt.recipe`. */
  package?: ManifestAdaptRecipe | undefined;
  /** The agent's `adapt:` section. */
  config: Partial<Record<AdaptRecipeKey, number | undefined>>;
  /** The serving model's input size (the larger of H and W): the image size when nothing else sets one. */
  inputSize?: number | undefined;
}

/** The resolved recipe and where each value came from. */
export interface ResolvedAdaptRecipe {
  recipe: AdaptRecipeValues;
  from: Partial<Record<AdaptRecipeKey, AdaptRecipeSource>>;
}

/**
 * Resolves a job's recipe key by key: the command's value, else the package's, else the agent configuration's, else
 * (image size only) the serving model's input size, else none (kd-trainer's default, docs/adaptation.md "The
 * fine-tuning recipe"). Values are taken as given: the command and the manifest were validated with core's
 * adaptRecipeSchema, the configuration with the same bounds.
 * @example
 * resolveAdaptRecipe({ command: { epochs: 3 }, package: { epochs: 5, lr0: 0.001 }, config: { lr0: 0.002, minGain: 0 }, inputSize: 320 });
 * // { recipe: { epochs: 3, imgsz: 320, lr0: 0.001, minGain: 0 }, from: { epochs: 'command', imgsz: 'model', lr0: 'package', minGain: 'config' } }
 */
export function resolveAdaptRecipe(o: ResolveAdaptRecipeOptions): ResolvedAdaptRecipe {
  const recipe: AdaptRecipeValues = {};
  const from: ResolvedAdaptRecipe['from'] = {};
  const layers: [AdaptRecipeSource, Partial<Record<AdaptRecipeKey, unknown>> | undefined][] = [
    ['command', o.command], ['package', o.package], ['config', o.config], ['model', o.inputSize === undefined ? undefined : { imgsz: o.inputSize }],
  ];
  for (const key of ADAPT_RECIPE_VALUE_KEYS) {
    for (const [source, layer] of layers) {
      const v = layer?.[key];
      if (typeof v !== 'number') continue;
      recipe[key] = v;
      from[key] = source;
      break;
    }
  }
  return { recipe, from };
}
