import { z } from 'zod';

// The adaptation recipe lives here, below both the protocol (the `adapt` command's `recipe`) and the package manifest
// (`adapt.recipe`): the protocol imports the package layer, never the other way round, so one schema serves both.

/** Most fine-tuning epochs an `adapt` command or a package's recipe may ask for (the trainer's default is 10). */
export const MAX_ADAPT_EPOCHS = 1000;
/** Longest training time an `adapt` command or a package's recipe may allow, in seconds (a week). */
export const MAX_ADAPT_TIME_BUDGET_SEC = 7 * 24 * 3600;

/**
 * Overrides of the adaptation recipe (`kd-trainer adapt`'s options; absent ones keep the agent's, then the trainer's
 * defaults). Bounded like the trainer's options, and tighter where a fleet should not be able to ask a device
 * for more: epochs, image size, time and memory. The `adapt` command's `recipe` and a manifest's `adapt.recipe`.
 */
export const adaptRecipeSchema = z.looseObject({
  epochs: z.int().min(1).max(MAX_ADAPT_EPOCHS).optional(),
  /** Labelling, training and evaluation image size in pixels. */
  imgsz: z.int().min(32).max(2048).optional(),
  lr0: z.number().gt(0).max(1).optional(),
  /** The teacher's detections scoring at least this become the frames' labels. */
  pseudoConf: z.number().min(0).max(1).optional(),
  /** Share of the frames held out to score the adapted model. */
  holdout: z.number().gt(0).max(0.9).optional(),
  /** Seconds of training over every resume; past them training stops and the job is decided on what it has. */
  timeBudgetSec: z.int().min(1).max(MAX_ADAPT_TIME_BUDGET_SEC).optional(),
  /** Memory the job may take (MB); the agent picks batch and threads to fit, or refuses the job. */
  memoryBudgetMb: z.int().min(64).max(1024 * 1024).optional(),
  /** Accept only when hold-out mAP50-95 rises by at least this. */
  minGain: z.number().min(-1).max(1).optional(),
  /** With labelled `val/` images: accept only when their mAP50-95 falls by at most this. */
  maxLoss: z.number().min(0).max(1).optional(),
});

/** The recipe's keys, in the schema's order. */
export const ADAPT_RECIPE_KEYS = Object.keys(adaptRecipeSchema.shape) as (keyof typeof adaptRecipeSchema.shape)[];
