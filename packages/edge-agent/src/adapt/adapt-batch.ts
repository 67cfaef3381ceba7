import { AdaptJobError } from './adapt-error.js';

/** kd-trainer adapt's own batch size: the most a job is given, budget or not. */
export const MAX_ADAPT_BATCH = 16;

/**
 * Resident memory one training image takes at 640 px (MiB), from docs/results.md: a yolov5n trained on tfjs took
 * 1,277 MiB with a micro-batch of 2 images at 640 px and 483 MiB at 128 px, so about 400 MiB an image at 640 px
 * over a base of about 450 MiB (node, tfjs, the weights). It scales with the pixels: (imgsz / 640)².
 */
export const MIB_PER_IMAGE_AT_640 = 400;

/** What {@link batchForBudget} decides. */
export interface BatchChoice {
  batch: number;
  /** The estimate of one image (MiB) at the job's image size. */
  perImageMb: number;
}

/**
 * The batch a memory budget allows: `floor((budget − base) / perImage)`, at most {@link MAX_ADAPT_BATCH}, with
 * `perImage = 400 MiB · (imgsz / 640)²` ({@link MIB_PER_IMAGE_AT_640}) and `base` the configured
 * `adapt.memoryBaseMb` (450 by default). Without a budget, the trainer's 16. A budget under `base + perImage` cannot
 * hold the smallest batch: AdaptJobError 'AGENT_ADAPT_MEMORY_TOO_SMALL' naming both. An estimate, so the job's RSS is
 * still watched against the budget while it runs.
 * @example
 * batchForBudget({ budgetMb: 1024, baseMb: 450, imgsz: 320 }); // { batch: 5, perImageMb: 100 }
 */
export function batchForBudget(o: { budgetMb: number | undefined; baseMb: number; imgsz: number }): BatchChoice {
  if (!(o.imgsz > 0)) throw new RangeError(`imgsz must be > 0, got ${String(o.imgsz)}`);
  const perImageMb = Math.round(MIB_PER_IMAGE_AT_640 * (o.imgsz / 640) ** 2 * 10) / 10;
  if (o.budgetMb === undefined) return { batch: MAX_ADAPT_BATCH, perImageMb };
  const batch = Math.min(MAX_ADAPT_BATCH, Math.floor((o.budgetMb - o.baseMb) / Math.max(perImageMb, 0.1)));
  if (batch < 1) {
    throw new AdaptJobError(
      'AGENT_ADAPT_MEMORY_TOO_SMALL',
      `a memory budget of ${o.budgetMb} MiB cannot hold the smallest batch at ${o.imgsz} px: the job needs about ${o.baseMb} MiB (adapt.memoryBaseMb) ` +
        `and ${perImageMb} MiB an image, so at least ${Math.ceil(o.baseMb + perImageMb)} MiB; raise memoryBudgetMb or lower imgsz`,
    );
  }
  return { batch, perImageMb };
}
