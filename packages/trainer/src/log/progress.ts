/** The stream a {@link ProgressBar} writes to: stdout, or a fake Writable in tests. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Options of {@link ProgressBar}. */
export interface ProgressBarOptions {
  /** 0-based epoch index; shown 1-based as `epoch/epochs`. */
  epoch: number;
  epochs: number;
  /** Batches in this epoch. */
  steps: number;
  /** Defaults to `process.stdout`. */
  stream?: ProgressStream;
  /** Clock in ms; tests inject one. */
  now?: () => number;
  /** Minimum ms between TTY redraws (default 100); the last step always redraws. */
  redrawMs?: number;
  /** Progress lines per epoch when not a TTY (default 10, including the final line). */
  plainLines?: number;
}

/** `m:ss`, or `h:mm:ss` past an hour. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = (total % 60).toString().padStart(2, '0');
  return h > 0 ? `${h}:${m.toString().padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/**
 * Per-epoch training progress. On a TTY it redraws one line in place (`\r`) with epoch, a bar sized to
 * the terminal, step/steps, loss terms, images/s, elapsed and ETA; elsewhere (CI logs, pipes) it prints
 * about `plainLines` plain lines per epoch.
 * @example
 * const bar = new ProgressBar({ epoch, epochs, steps: loader.length });
 * bar.update(i + 1, { box: 0.05, obj: 0.02, cls: 0.01 }, imagesSeen);
 * bar.finish();
 */
export class ProgressBar {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly start: number;
  private readonly redrawMs: number;
  private readonly plainLines: number;
  private lastDraw = -Infinity;
  private lastPlainBucket = 0;
  private step = 0;
  private losses: Readonly<Record<string, number>> = {};
  private images: number | undefined;
  private finished = false;

  constructor(private readonly options: ProgressBarOptions) {
    const { epoch, epochs, steps } = options;
    if (!Number.isInteger(epochs) || epochs < 1) throw new RangeError(`epochs must be a positive integer, got ${epochs}`);
    if (!Number.isInteger(epoch) || epoch < 0 || epoch >= epochs) throw new RangeError(`epoch must be an integer in 0..${epochs - 1}, got ${epoch}`);
    if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`);
    this.stream = options.stream ?? process.stdout;
    this.tty = this.stream.isTTY === true;
    this.now = options.now ?? Date.now;
    this.start = this.now();
    this.redrawMs = options.redrawMs ?? 100;
    this.plainLines = Math.max(1, options.plainLines ?? 10);
  }

  /**
   * Records that `step` batches (1-based count) are done, with the current loss terms and, optionally,
   * the number of images processed so far this epoch (for images/s).
   */
  update(step: number, losses: Readonly<Record<string, number>> = {}, images?: number): void {
    if (this.finished) return;
    this.step = Math.max(0, Math.min(this.options.steps, step));
    this.losses = losses;
    this.images = images;
    const t = this.now();
    if (this.tty) {
      if (t - this.lastDraw >= this.redrawMs || this.step === this.options.steps) {
        this.lastDraw = t;
        this.stream.write(`\r${this.line(this.stream.columns ?? 80)}\x1b[K`);
      }
      return;
    }
    // One plain line each time progress crosses a 1/plainLines boundary; the last is left to finish().
    const bucket = Math.floor((this.step * this.plainLines) / this.options.steps);
    if (bucket > this.lastPlainBucket && this.step < this.options.steps) {
      this.lastPlainBucket = bucket;
      this.stream.write(`${this.line(Infinity, false)}\n`);
    }
  }

  /** Writes the final line of the epoch (with optional extra text) and ends it with a newline. */
  finish(extra = ''): void {
    if (this.finished) return;
    this.finished = true;
    const suffix = extra ? `  ${extra}` : '';
    if (this.tty) this.stream.write(`\r${this.line((this.stream.columns ?? 80) - suffix.length)}${suffix}\x1b[K\n`);
    else this.stream.write(`${this.line(Infinity, false)}${suffix}\n`);
  }

  /** The progress line for the current state, fitted to `columns` characters. */
  line(columns: number, withBar = true): string {
    const { epoch, epochs, steps } = this.options;
    const elapsed = this.now() - this.start;
    const head = `${String(epoch + 1).padStart(String(epochs).length)}/${epochs}`;
    const count = `${String(this.step).padStart(String(steps).length)}/${steps}`;
    const pct = `${Math.floor((100 * this.step) / steps).toString().padStart(3)}%`;
    const losses = Object.entries(this.losses).map(([k, v]) => `${k} ${Number.isFinite(v) ? v.toFixed(4) : String(v)}`).join(' ');
    const secs = elapsed / 1000;
    const rate = secs > 0 && this.step > 0
      ? this.images !== undefined ? `${(this.images / secs).toFixed(1)} img/s` : `${(this.step / secs).toFixed(2)} it/s`
      : '';
    const eta = this.step > 0 ? formatDuration((elapsed / this.step) * (steps - this.step)) : '?';
    const time = `${formatDuration(elapsed)}<${eta}`;
    const tail = [count, losses, rate, time].filter(Boolean).join('  ');
    if (!withBar) return `${head} ${pct}  ${tail}`;
    // Give the bar whatever the text leaves; drop it, then the text's end, on narrow terminals.
    const fixed = head.length + pct.length + tail.length + 6;
    const barWidth = Math.min(30, columns - 1 - fixed);
    if (barWidth < 5) return `${head} ${pct}  ${tail}`.slice(0, Math.max(0, columns - 1));
    const filled = Math.round((barWidth * this.step) / steps);
    return `${head} ${pct} |${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}|  ${tail}`;
  }
}
