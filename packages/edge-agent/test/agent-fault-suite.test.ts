import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFaultSuite } from './faults/fault-suite.js';
import { MOSQUITTO } from './mqtt-brokers.js';

// A short seeded run of `npm run faults` (which does 200 iterations and more): every invariant is checked after
// every iteration, and the run throws at the first one broken.
describe.skipIf(!existsSync(MOSQUITTO))('the fault suite, a short run', () => {
  it('keeps every invariant through 12 iterations of mixed faults (seed 7)', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'kd-faults-test-'));
    try {
      const lines: string[] = [];
      const report = await runFaultSuite({ iterations: 12, seed: 7, workDir, log: (l) => lines.push(l) });
      expect(report.iterations).toBe(12);
      expect(lines).toHaveLength(12);
      expect(report.faultsInjected).toBeGreaterThan(5);
      // at least the ping, state and mark checks of each iteration
      expect(report.invariantsChecked).toBeGreaterThan(12 * 5);
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }, 600_000);
});
