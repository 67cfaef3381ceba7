import type { CanarySpec } from './rollout-spec.js';

/**
 * Split the targets into waves: the canary (a count, or a share rounded up to at least one device), then
 * one wave per cumulative percentage (each brings the rollout to ceil(n · p / 100) devices). Waves left
 * empty because an earlier one already covers them are dropped, so every wave has at least one device.
 * @example
 * planWaves(ids20, { canary: { count: 1 }, percents: [10, 50, 100] }); // sizes 1, 1, 8, 10
 */
export function planWaves(deviceIds: readonly string[], waves: { canary: CanarySpec; percents: readonly number[] }): string[][] {
  const n = deviceIds.length;
  if (n === 0) return [];
  const ends: number[] = [];
  const canary = 'count' in waves.canary ? waves.canary.count : Math.ceil((n * waves.canary.percent) / 100);
  ends.push(Math.min(n, Math.max(1, canary)));
  for (const p of waves.percents) ends.push(Math.min(n, Math.ceil((n * p) / 100)));
  const out: string[][] = [];
  let done = 0;
  for (const end of ends) {
    if (end <= done) continue;
    out.push(deviceIds.slice(done, end));
    done = end;
  }
  // The last percentage is 100, but a spec built in code may not say so: nobody is left out.
  if (done < n) out.push(deviceIds.slice(done));
  return out;
}
