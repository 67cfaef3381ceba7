/** ultralytics utils/loss.py `balance` for heads of other than three levels (P2, P3–P6, P3–P7…). */
const OTHER_HEADS = [4.0, 1.0, 0.25, 0.06, 0.02];

/**
 * YOLOv5's objectness weight per level: [4.0, 1.0, 0.4] for P3, P4, P5, else [4.0, 1.0, 0.25, 0.06, 0.02]
 * level by level (ultralytics utils/loss.py `balance`; it has no weight past five levels, kd-trainer uses
 * the last). The hard loss and the KD loss weigh levels alike.
 */
export function objectnessBalance(levels: number): number[] {
  if (levels === 3) return [4.0, 1.0, 0.4];
  return Array.from({ length: levels }, (_, i) => OTHER_HEADS[Math.min(i, OTHER_HEADS.length - 1)]!);
}
