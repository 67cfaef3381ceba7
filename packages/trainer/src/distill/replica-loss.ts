/**
 * The distillation loss as the gradient worker builds it: the ExtraLossModule that
 * DistillSession names, imported by URL in the worker thread (a build entry of its own).
 */
import type { ExtraLossModule } from '../train/hooks.js';
import { buildDistillLoss, type DistillJob } from './distill-loss.js';

/** Builds the KD loss of a job that DistillSession posted to the worker. */
export const buildExtraLoss: ExtraLossModule['buildExtraLoss'] = (job, model) => buildDistillLoss(job as DistillJob, model);
