/**
 * Validated epochs in a row at or above the teacher before `--kd-stop teacher` stops distilling: one epoch
 * on a small val split can pass the teacher by noise alone.
 */
export const STOP_EPOCHS = 2;

/** Where `--kd-stop teacher` stands, as a checkpoint keeps it (`kdStop`), so `--resume` continues it. */
export interface KdStopState {
  /** Validated epochs in a row with the student's figure at or above the teacher's (toward {@link STOP_EPOCHS}). */
  aboveTeacher: number;
  /** The 0-based epoch from which α is 0: the student had reached the teacher. */
  stoppedFrom?: number;
}

/**
 * The `--kd-stop teacher` rule of `distill` (on mAP50-95) and `classify distill` (on top-1): once the
 * student's val figure has reached the teacher's on {@link STOP_EPOCHS} validated epochs in a row (level
 * counts, a lower epoch restarts the count), α is 0 from the next epoch to the end of the run.
 * @example
 * const stop = new KdStop(teacher.top1, ck?.meta.kdStop);
 * if (stop.observe(epoch, val.top1)) log.info(`α is 0 from epoch ${stop.stoppedFrom! + 1}`);
 */
export class KdStop {
  aboveTeacher: number;
  stoppedFrom?: number;

  /** `state`: where a resumed run's checkpoint left the count, or the stop. */
  constructor(readonly teacherFigure: number, state?: KdStopState) {
    this.aboveTeacher = state?.aboveTeacher ?? 0;
    if (state?.stoppedFrom !== undefined) this.stoppedFrom = state.stoppedFrom;
  }

  /** Whether α is 0 in (0-based) `epoch`. */
  stopped(epoch: number): boolean {
    return this.stoppedFrom !== undefined && epoch >= this.stoppedFrom;
  }

  /** Counts `epoch`'s validation; true when it is the one that stops distillation (from the next epoch on). */
  observe(epoch: number, figure: number): boolean {
    if (this.stoppedFrom !== undefined) return false;
    this.aboveTeacher = figure >= this.teacherFigure ? this.aboveTeacher + 1 : 0;
    if (this.aboveTeacher < STOP_EPOCHS) return false;
    this.stoppedFrom = epoch + 1;
    return true;
  }

  /** The count and the decision, for the checkpoint. */
  state(): KdStopState {
    return { aboveTeacher: this.aboveTeacher, ...(this.stoppedFrom !== undefined ? { stoppedFrom: this.stoppedFrom } : {}) };
  }
}

/**
 * The end-of-run line of a `--kd-stop`: the (1-based) epochs that distilled, from `first` (the 0-based first epoch
 * with α > 0, after the warm-up) to the stop; `figure` names what was compared (`mAP50-95`, `top-1`).
 */
export function kdStopSummary(stoppedFrom: number, first: number, figure: string): string {
  if (stoppedFrom <= first) return `kd-stop: the student reached the teacher's val ${figure} during the warm-up, so it never distilled: the labels alone trained it`;
  const epochs = first + 1 === stoppedFrom ? `epoch ${stoppedFrom}` : `epochs ${first + 1}–${stoppedFrom}`;
  return `kd-stop: distilled in ${epochs}, trained on the labels alone from epoch ${stoppedFrom + 1} (the student had reached the teacher's val ${figure})`;
}

/** The line logged when a run stops distilling after `epoch` (0-based), the student at `value` of `figure`. */
export function kdStopDecision(stop: KdStop, epoch: number, figure: string, value: number): string {
  return `kd-stop: the student's val ${figure} (${value.toFixed(3)}) has reached the teacher's (${stop.teacherFigure.toFixed(3)}) on ${STOP_EPOCHS} epochs in a row: α is 0 from epoch ${epoch + 2} on, the labels alone train the student (--kd-stop never distils to the end)`;
}

/** The line logged when a resumed run had already stopped distilling. */
export function kdStopResumed(stoppedFrom: number): string {
  return `kd-stop: the student reached the teacher before this resume; α stays 0 from epoch ${stoppedFrom + 1} on`;
}
