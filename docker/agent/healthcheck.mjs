// Docker HEALTHCHECK for kd-agent: healthy while the heartbeat file is fresher than KD_AGENT_HEARTBEAT_MAX_AGE_S
// (default 90 s, three of the agent's 30 s beats). Exit 0 = healthy, 1 = unhealthy, as Docker expects.
import { statSync } from 'node:fs';

const file = process.env.KD_AGENT_HEARTBEAT ?? '/var/lib/kd-agent/heartbeat';
const maxAgeS = Number(process.env.KD_AGENT_HEARTBEAT_MAX_AGE_S ?? '90');
try {
  const ageS = (Date.now() - statSync(file).mtimeMs) / 1000;
  if (ageS > maxAgeS) {
    process.stderr.write(`heartbeat ${file} is ${Math.round(ageS)} s old (max ${maxAgeS} s)\n`);
    process.exit(1);
  }
} catch (err) {
  process.stderr.write(`no heartbeat at ${file}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
