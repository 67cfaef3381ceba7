import { WeightsError } from '../errors.js';
import type { SourceWeights } from './source-weights.js';

/** An ultralytics YOLOv5 `.pt` checkpoint as {@link SourceWeights}. */
export async function ptSource(file: string): Promise<SourceWeights> {
  throw new WeightsError(`${file}: reading ultralytics checkpoints is not wired yet`);
}
