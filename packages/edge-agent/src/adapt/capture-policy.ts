/** Why a frame was kept: it was the `everyN`-th, or one of its detections was uncertain. */
export type CaptureReason = 'periodic' | 'uncertain';

/** What {@link CapturePolicy.decide} chose for a frame it keeps. */
export interface CaptureChoice {
  reason: CaptureReason;
  /** Detections of the frame whose score lies in the uncertain band (also for a periodic frame). */
  uncertain: number;
}

/** Options of {@link CapturePolicy}; the defaults are {@link CAPTURE_POLICY_DEFAULTS}. */
export interface CapturePolicyOptions {
  /** Keep every `everyN`-th frame served, starting with the first. */
  everyN?: number;
  /** Lower end of the uncertain band (inclusive). */
  uncertainLow?: number;
  /** Upper end of the uncertain band (exclusive). */
  uncertainHigh?: number;
  /** At most one frame kept for being uncertain per this many milliseconds. */
  uncertainMinIntervalMs?: number;
  /** A monotonic clock in milliseconds (default `performance.now`); tests pass a fake one. */
  now?: () => number;
}

/**
 * Defaults of the capture policy, chosen for what the nightly adapt job (issue 16) wants: frames that cover a day of
 * this camera's conditions (light, weather, traffic), plus the frames the student found hard.
 *
 * - `everyN` 600: consecutive frames of a fixed camera are near-duplicates, so density buys nothing; at the
 *   agent's default replay rate of 5 fps this is one frame every 2 minutes, 720 a day. Frames are counted, not
 *   seconds: a 30 fps camera wants a larger `everyN` to keep the same spacing.
 * - uncertain band [0.25, 0.6): the detector drops every detection scoring under `serve.conf` (0.25 by default,
 *   and the agent's config makes the band start there unless told otherwise), so the lowest score the service ever
 *   sees is the threshold. Detections just above it are the ones the student kept but barely: its false positives
 *   and its hard true positives, where a teacher's label moves it most (uncertainty sampling; a score of 0.5 is the
 *   least certain). Above about 0.6 a YOLO-family detection is mostly right and teaches little.
 * - `uncertainMinIntervalMs` 5 minutes: a scene with an object that is always ambiguous (a poster of a person, a
 *   reflection) would otherwise fill the folder with copies of one frame; this caps uncertain frames at 288 a day.
 *
 * 720 periodic + at most 288 uncertain frames is about the 1000 frames {@link FrameCapture} keeps by default.
 */
export const CAPTURE_POLICY_DEFAULTS = {
  everyN: 600,
  uncertainLow: 0.25,
  uncertainHigh: 0.6,
  uncertainMinIntervalMs: 5 * 60_000,
} as const;

function checkInteger(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${String(v)}`);
}

function checkScore(name: string, v: number): void {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new RangeError(`${name} must be within [0, 1], got ${String(v)}`);
}

/**
 * Decides which served frames to keep: every `everyN`-th frame ('periodic'), and frames with at least one detection
 * scoring in [uncertainLow, uncertainHigh) ('uncertain'), at most one of those per `uncertainMinIntervalMs`. A frame
 * that is both is 'periodic' and does not use up the uncertain allowance. Synchronous and cheap: it runs in the
 * serving loop.
 * @example
 * const policy = new CapturePolicy({ everyN: 300 });
 * const choice = policy.decide(message.detections); // { reason: 'periodic', uncertain: 0 } for the first frame
 */
export class CapturePolicy {
  readonly everyN: number;
  readonly uncertainLow: number;
  readonly uncertainHigh: number;
  readonly uncertainMinIntervalMs: number;
  readonly #now: () => number;
  #frames = 0;
  #lastUncertainAt: number | undefined;

  constructor(options: CapturePolicyOptions = {}) {
    this.everyN = options.everyN ?? CAPTURE_POLICY_DEFAULTS.everyN;
    this.uncertainLow = options.uncertainLow ?? CAPTURE_POLICY_DEFAULTS.uncertainLow;
    this.uncertainHigh = options.uncertainHigh ?? CAPTURE_POLICY_DEFAULTS.uncertainHigh;
    this.uncertainMinIntervalMs = options.uncertainMinIntervalMs ?? CAPTURE_POLICY_DEFAULTS.uncertainMinIntervalMs;
    checkInteger('everyN', this.everyN, 1);
    checkScore('uncertainLow', this.uncertainLow);
    checkScore('uncertainHigh', this.uncertainHigh);
    if (!(this.uncertainLow < this.uncertainHigh)) {
      throw new RangeError(`uncertainLow must be below uncertainHigh, got ${this.uncertainLow} and ${this.uncertainHigh}`);
    }
    checkInteger('uncertainMinIntervalMs', this.uncertainMinIntervalMs, 0);
    this.#now = options.now ?? (() => performance.now());
  }

  /** Counts one served frame and says whether to keep it and why, or undefined to let it go. */
  decide(detections: readonly { score: number }[]): CaptureChoice | undefined {
    const periodic = this.#frames % this.everyN === 0;
    this.#frames++;
    let uncertain = 0;
    for (const d of detections) if (d.score >= this.uncertainLow && d.score < this.uncertainHigh) uncertain++;
    if (periodic) return { reason: 'periodic', uncertain };
    if (uncertain === 0) return undefined;
    const now = this.#now();
    // A clock that went back (a fake one, or a restarted count) opens the gate rather than closing it for good.
    if (this.#lastUncertainAt !== undefined && now >= this.#lastUncertainAt && now - this.#lastUncertainAt < this.uncertainMinIntervalMs) {
      return undefined;
    }
    this.#lastUncertainAt = now;
    return { reason: 'uncertain', uncertain };
  }
}
