// `npm run faults [-- --iterations 200 --seed 1 --quiet]`: the seeded fault-injection run against kd-agent
// (see fault-suite.ts). Prints one line per iteration, then the figures; exits 1 at the first broken invariant,
// keeping its working folder for a look.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FaultSuiteViolation, runFaultSuite } from './fault-suite.js';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: process.env.FAULT_ITERATIONS ?? '200' },
    seed: { type: 'string', default: process.env.FAULT_SEED ?? '1' },
    quiet: { type: 'boolean', default: false },
  },
});
const iterations = Number(values.iterations);
const seed = Number(values.seed);
if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError(`--iterations must be an integer >= 1, got ${values.iterations}`);
if (!Number.isSafeInteger(seed)) throw new RangeError(`--seed must be an integer, got ${values.seed}`);

const workDir = await mkdtemp(join(tmpdir(), 'kd-faults-'));
console.log(`kd-agent fault suite: ${iterations} iterations, seed ${seed}, in ${workDir}`);
try {
  const r = await runFaultSuite({ iterations, seed, workDir, log: values.quiet ? undefined : (line) => console.log(line) });
  const faults = Object.entries(r.faults).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ');
  const commands = Object.entries(r.commands).map(([k, n]) => `${k} ${n}`).join(', ');
  console.log('');
  console.log(`iterations        ${r.iterations} (seed ${r.seed}), ${(r.wallMs / 1000).toFixed(0)} s`);
  console.log(`commands          ${commands}`);
  console.log(`faults injected   ${r.faultsInjected}: ${faults}`);
  console.log(`invariants        ${r.invariantsChecked} checked, 0 broken`);
  console.log(`restarts          agent ${r.agentStarts} starts, broker ${r.brokerStarts} starts; fleet re-sent ${r.resends} commands`);
  await rm(workDir, { recursive: true, force: true });
} catch (err) {
  if (err instanceof FaultSuiteViolation) {
    console.error(`\nINVARIANT BROKEN at ${err.message}\nworking folder kept: ${workDir}`);
    process.exit(1);
  }
  throw err;
}
