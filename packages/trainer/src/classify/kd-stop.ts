import { STOP_EPOCHS } from '../distill/distill-session.js';

/** Where `--kd-stop teacher` stands, as a classify checkpoint keeps it (meta `kdStop`), so `--resume` continues it. */
export interface ClassifyKdStopState {
  /** Validated epochs in a row with the student's val top-1 at or above the teacher's (toward {@link STOP_EPOCHS}). */
  aboveTeacher: number;
  /** The 0-based epoch from which α is 0: the student had reached the teacher. */
  stoppedFrom?: number;
}

/**
 * `kd-trainer classify distill --kd-stop teacher`, the rule of detection's `--kd-stop` on top-1: once the
 * student's val top-1 has reached the teacher's on {@link STOP_EPOCHS} validated epochs in a row (level
 * counts, a lower epoch restarts the count), α is 0 from the next epoch to the end of the run.
 * @example
 * const stop = new ClassifyKdStop(teacher.top1, ck?.meta.kdStop);
 * if (stop.observe(epoch, val.top1)) log.info(`α is 0 from epoch ${stop.stoppedFrom! + 1}`);
 */
export class ClassifyKdStop {
  aboveTeacher: number;
  stoppedFrom?: number;

  /** `state`: where a resumed run's checkpoint left the count, or the stop. */
  constructor(readonly teacherTop1: number, state?: ClassifyKdStopState) {
    this.aboveTeacher = state?.aboveTeacher ?? 0;
    if (state?.stoppedFrom !== undefined) this.stoppedFrom = state.stoppedFrom;
  }

  /** Whether α is 0 in (0-based) `epoch`. */
  stopped(epoch: number): boolean {
    return this.stoppedFrom !== undefined && epoch >= this.stoppedFrom;
  }

  /** Counts `epoch`'s validation; true when it is the one that stops distillation (from the next epoch on). */
  observe(epoch: number, top1: number): boolean {
    if (this.stoppedFrom !== undefined) return false;
    this.aboveTeacher = top1 >= this.teacherTop1 ? this.aboveTeacher + 1 : 0;
    if (this.aboveTeacher < STOP_EPOCHS) return false;
    this.stoppedFrom = epoch + 1;
    return true;
  }

  state(): ClassifyKdStopState {
    return { aboveTeacher: this.aboveTeacher, ...(this.stoppedFrom !== undefined ? { stoppedFrom: this.stoppedFrom } : {}) };
  }
}
