/**
 * YOLOv5's objectness weight per level: [4.0, 1.0, 0.4] for P3, P4, P5 (ultralytics utils/loss.py
 * `balance`), 1 for every level of other heads. The hard loss and the KD loss weigh levels alike.
 */
export function objectnessBalance(levels: number): number[] {
  return levels === 3 ? [4.0, 1.0, 0.4] : new Array<number>(levels).fill(1);
}
