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
