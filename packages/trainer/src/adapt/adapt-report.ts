import type { AcceptanceCheck, AcceptanceRule } from './acceptance.js';
import type { AdaptFigures, EvaluateProgress, ModelFigures } from './evaluate.js';
import type { AdaptExport, ExportProgress } from './export-adapted.js';
import type { AdaptRecipe, TrainingRecord, TrainProgress } from './fine-tune.js';
import type { LabelProgress, LabelSummary, ReplaySummary } from './label-frames.js';

/** The stages of a job, in order. */
export type AdaptStage = 'label' | 'train' | 'evaluate' | 'export';

/** What a job reports as it goes (the agent forwards these): one shape per stage. */
export type AdaptProgress = LabelProgress | TrainProgress | EvaluateProgress | ExportProgress;

/** adapt.json: everything a finished job did and decided. Written last, atomically. */
export interface AdaptReport {
  version: 1;
  status: 'accepted' | 'rejected';
  accepted: boolean;
  /** One line per check of the rule, passed or not. */
  reasons: string[];
  checks: AcceptanceCheck[];
  acceptance: AcceptanceRule;
  frames: LabelSummary['frames'] & { sources: string[] };
  split: LabelSummary['split'] & { share: number; seed: number };
  /** The replay images trained on beside the frames (`--replay`; all zero without it). */
  replay: ReplaySummary;
  /** The teacher's boxes on the used frames (at `pseudoConf`). */
  boxes: LabelSummary['boxes'];
  pseudoConf: number;
  recipe: AdaptRecipe;
  training: Omit<TrainingRecord, 'recipe'> & { resumes: number };
  evaluation: AdaptFigures;
  /** Present when the adapted model was accepted and exported. */
  export?: AdaptExport;
  /** Why there is no export: 'rejected' or 'not asked (--no-export)'. */
  exportSkipped?: string;
  paths: {
    job: string;
    data: string;
    run: string;
    serving: string;
    teacher: string;
    adapted?: string;
    val?: string;
    export?: string;
    report: string;
  };
  /** Peak resident memory of the process of this call (MiB): student, teacher and loaders together. */
  peakRssMiB: number;
  finishedAt: string;
}

/** A job stopped by its signal before it finished; calling again with the same folder goes on from `stage`. */
export interface AdaptCancelled {
  status: 'cancelled';
  stage: AdaptStage;
  job: string;
}

/** What {@link runAdapt} returns. */
export type AdaptResult = AdaptReport | AdaptCancelled;

const num = (v: number | undefined, w: number): string => (v === undefined ? '—' : v.toFixed(3)).padStart(w);
const signed = (v: number | undefined, w: number): string => (v === undefined ? '—' : `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)}`).padStart(w);

/** The before/after table of a report, and its verdict, as text lines. */
export function formatAdaptTable(r: AdaptReport): string[] {
  const { holdout: h, val: v } = r.evaluation;
  const cols = (f: ModelFigures | undefined, g: ModelFigures | undefined): string => `${num(f?.map50, 9)}${num(f?.map, 10)}${v ? `   ${num(g?.map50, 9)}${num(g?.map, 10)}` : ''}`;
  const diff = (a: ModelFigures | undefined, b: ModelFigures | undefined, k: 'map50' | 'map'): number | undefined => (a && b ? a[k] - b[k] : undefined);
  const lines = [
    `${''.padEnd(10)}${`hold-out: ${h.images} frames`.padStart(19)}${v ? `   ${`val: ${v.images} images`.padStart(19)}` : ''}`,
    `${'model'.padEnd(10)}${'mAP50'.padStart(9)}${'mAP50-95'.padStart(10)}${v ? `   ${'mAP50'.padStart(9)}${'mAP50-95'.padStart(10)}` : ''}`,
    `${'serving'.padEnd(10)}${cols(h.serving, v?.serving)}`,
    `${'adapted'.padEnd(10)}${cols(h.adapted, v?.adapted)}`,
    `${'change'.padEnd(10)}${signed(diff(h.adapted, h.serving, 'map50'), 9)}${signed(diff(h.adapted, h.serving, 'map'), 10)}${v ? `   ${signed(diff(v.adapted, v.serving, 'map50'), 9)}${signed(diff(v.adapted, v.serving, 'map'), 10)}` : ''}`,
  ];
  if (v?.teacher) lines.push(`${'teacher'.padEnd(10)}${num(undefined, 9)}${num(undefined, 10)}   ${num(v.teacher.map50, 9)}${num(v.teacher.map, 10)}`);
  lines.push(`${r.accepted ? 'accepted' : 'rejected'}: ${r.reasons.join('; ')}`);
  return lines;
}
