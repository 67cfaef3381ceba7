import type { RolloutSpec } from './rollout-spec.js';

/**
 * Devices per minute allowed now: `perMinute`, multiplied by the ramp's factor once for every `every`
 * devices that have succeeded (or been notified), capped at the ramp's maximum (AWS IoT Jobs'
 * exponentialRate: baseRatePerMinute, incrementFactor, rateIncreaseCriteria).
 */
export function currentRate(rate: RolloutSpec['rate'], counts: { succeeded: number; notified: number }): number {
  const ramp = rate.ramp;
  if (ramp === undefined) return rate.perMinute;
  const steps = Math.floor((ramp.on === 'succeeded' ? counts.succeeded : counts.notified) / ramp.every);
  // Stop multiplying once over the cap: a large step count would otherwise overflow to Infinity first.
  let r = rate.perMinute;
  for (let i = 0; i < steps && r < ramp.maxPerMinute; i++) r *= ramp.factor;
  return Math.min(ramp.maxPerMinute, Math.floor(r));
}
