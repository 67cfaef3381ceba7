/**
 * The fleet half of the demo: start kd-fleet on embedded defaults, start simulated devices (real
 * kd-agents), push the signed package, roll it out in waves (a canary, then half, then all) gated on
 * the devices' own benchmarks, and print the fleet report, what each device serves (profile, architecture, TensorRT,
 * file, precision, runtime) and the dashboard URL. A package without an int8 calibration cache for a device's TensorRT
 * version is rolled out all the same, with a warning naming those devices (they build fp16).
 *
 *   node --conditions=source --import tsx examples/fleet-demo.ts --package runs/demo/packages/shapes-1.0.0.tar \
 *     --trust runs/demo/keys/fleet.pub --sign-key runs/demo/keys/fleet.key [--devices 6] [--keep]
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { checkRolloutTrtCoverage, FleetServer, FleetSimulator, webHandlers, type FleetContext } from '@kd-edge/fleet';

const { values: a } = parseArgs({
  options: {
    package: { type: 'string' }, trust: { type: 'string' }, 'sign-key': { type: 'string' },
    devices: { type: 'string', default: '6' }, data: { type: 'string', default: 'runs/demo/fleet' },
    'max-p95': { type: 'string', default: '2000' }, keep: { type: 'boolean', default: false },
  },
});
if (!a.package || !a.trust) {
  console.error('usage: fleet-demo.ts --package PKG.tar --trust KEY.pub [--sign-key KEY] [--devices N] [--keep]');
  process.exit(2);
}
const t0 = Date.now();
const say = (msg: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${msg}`);
const token = randomBytes(12).toString('hex');

const handlers = webHandlers();
const server = await FleetServer.start({
  dataDir: join(a.data!, 'server'), fleet: 'demo', httpPort: 0, mqttPort: 0, wsPort: 0,
  trustedKeys: [a.trust], signKey: a['sign-key'], token, tickMs: 250, handlers,
});
say(`kd-fleet up: dashboard ${server.httpUrl}  MQTT ${server.mqttUrl}`);
const n = Number(a.devices);
const sim = await FleetSimulator.start({
  devices: n, profile: 'mix', broker: server.mqttUrl, fleet: 'demo', keys: a.trust, root: join(a.data!, 'devices'), staggerMs: 50,
});
say(`${n} simulated devices online (real kd-agents; nano/orin/x86 profiles scale their measured latency)`);
const ctx: FleetContext = server.context;
const pkg = await ctx.pushPackage(a.package);
say(`registry: ${pkg.name}@${pkg.version} verified and stored (${(pkg.size / 1e6).toFixed(2)} MB, signed by ${pkg.keyId})`);
const id = ctx.startRollout({
  package: { name: pkg.name, version: pkg.version }, target: { all: true },
  waves: { canary: { count: 1 }, percents: [50, 100] }, gates: { maxP95Ms: Number(a['max-p95']) }, errorThreshold: 0.5,
});
say(`rollout ${id}: canary 1 device, then 50 %, then 100 %; gate p95 ≤ ${a['max-p95']} ms on each device's own benchmark`);
// As POST /api/rollouts does: the package's calibration caches against the TensorRT versions the targets report.
for (const w of await checkRolloutTrtCoverage(ctx, id)) say(`warning ${w.code}: ${w.message}`);
let last = '';
for (;;) {
  const r = ctx.rollouts.get(id)!;
  const ex = ctx.rollouts.executions(id);
  const count = (s: string): number => ex.filter((e) => e.state === s).length;
  const line = `wave ${r.currentWave + 1}/${r.waveCount} ${r.state}: ${count('succeeded')} succeeded, ${count('failed') + count('timed_out')} failed, ${ex.length - count('succeeded') - count('failed') - count('timed_out') - count('queued')} in flight, ${count('queued')} queued`;
  if (line !== last) say(line);
  last = line;
  if (!['running', 'paused', 'awaiting_approval'].includes(r.state)) break;
  await new Promise((res) => setTimeout(res, 250));
}
const r = ctx.rollouts.get(id)!;
console.log('');
console.log(`fleet report: rollout ${id} ${r.state}${r.reason ? ` (${r.reason})` : ''}`);
console.log(`${'device'.padEnd(16)}${'version'.padEnd(10)}${'p50 ms'.padStart(9)}${'p95 ms'.padStart(9)}${'fps'.padStart(8)}${'power W'.padStart(9)}  result`);
for (const e of ctx.rollouts.executions(id)) {
  const d = ctx.devices.get(e.deviceId);
  const b = ctx.devices.latestBench(e.deviceId);
  const f = (v: number | null | undefined, digits: number, w: number): string => (v === null || v === undefined ? '—' : v.toFixed(digits)).padStart(w);
  console.log(`${e.deviceId.padEnd(16)}${(d?.activeModel?.version ?? '—').padEnd(10)}${f(b?.p50, 1, 9)}${f(b?.p95, 1, 9)}${f(b?.fps, 1, 8)}${f(b?.powerMw === null || b?.powerMw === undefined ? undefined : b.powerMw / 1000, 1, 9)}  ${e.state}${e.code ? ` ${e.code}` : ''}`);
}
console.log('');

// What each simulated device serves, as its status reports it (the file its agent picked for its architecture).
const served = (): boolean => sim.devices.every((s) => ctx.devices.get(s.deviceId)?.activeModel?.file !== undefined);
for (let i = 0; i < 40 && !served(); i++) await new Promise((res) => setTimeout(res, 250)); // the last statuses may still be on their way
console.log('what each device serves:');
console.log(`${'device'.padEnd(16)}${'profile'.padEnd(9)}${'arch'.padEnd(9)}${'TensorRT'.padEnd(10)}${'file'.padEnd(24)}${'precision'.padEnd(11)}runtime`);
for (const s of sim.devices) {
  const d = ctx.devices.get(s.deviceId);
  const hw = d?.status?.hardware;
  const m = d?.activeModel;
  const runtime = m?.runtime === undefined ? '—' : `${m.runtime}${m.serving !== undefined && m.serving !== m.runtime ? ` (${m.serving})` : ''}`;
  console.log(`${s.deviceId.padEnd(16)}${s.profile.padEnd(9)}${(hw?.arch ?? '—').padEnd(9)}${(hw?.tensorrt ?? '—').padEnd(10)}${(m?.file ?? '—').padEnd(24)}${(m?.precision ?? '—').padEnd(11)}${runtime}`);
}
console.log('');
if (a.keep) {
  console.log(`dashboard: ${server.httpUrl}  (control token: ${token})  — Ctrl-C stops the fleet`);
  await new Promise<void>((res) => process.once('SIGINT', () => res()));
} else {
  console.log(`dashboard: ${server.httpUrl} while it runs: npm run demo:fleet keeps it up (control token printed there)`);
}
await sim.stop();
await server.close();
say('fleet stopped');
