/**
 * kd-fleet at scale: a ~5 MB signed package rolled out over MQTT chunks (canary 1 %, then 100 %) to N simulated
 * kd-agents through a Mosquitto child, timing the rollout and sampling the broker's $SYS counters, the fleet's own
 * CPU and RSS (the fleet runs in this process; the agents always run in child processes), then the broker's
 * own ceiling for 256 KiB QoS 1 frames.
 *
 *   BENCH_DEVICES="100 300" npm run bench -w @kd-edge/fleet
 */
import { cpus, freemem, tmpdir, totalmem } from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { generateKeyPair, writeKeyPair } from '@kd-edge/core';
import { FleetServer, FleetSimulator } from '../src/index.js';
import { MOSQUITTO_LIMITS, SysWatcher, measureCeiling, procCpuSeconds, procRssBytes, startBenchMosquitto } from './bench-broker.js';
import { makeDetectorPackage } from '../../edge-agent/test/fixtures/agent/detector-package.js';

const sizes = (process.env.BENCH_DEVICES ?? '100 300 1000').split(/[\s,]+/).filter(Boolean).map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new RangeError(`BENCH_DEVICES must list positive integers, got ${process.env.BENCH_DEVICES}`);
const PACKAGE_BYTES = Number(process.env.BENCH_PACKAGE_MB ?? 5) * 1e6;
const CEILING_SUBSCRIBERS = Number(process.env.BENCH_CEILING_SUBS ?? 10);
const t0 = Date.now();
const say = (msg: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${msg}`);

interface Row {
  devices: number; processes: number; seconds: number; succeeded: number; failed: number; state: string;
  msgsPerSec: number; mbSentPerSec: number; mbRecvPerSec: number; peakLoadMb: number;
  gbOut: number; mbIn: number; packageBytes: number;
  fleetCpuPct: number; fleetRssMb: number; agentsCpuPct: number; agentsRssMb: number; brokerCpuPct: number;
}

const root = await mkdtemp(join(tmpdir(), 'kd-fleet-bench-'));
const broker = await startBenchMosquitto();
say(`mosquitto ${broker.url} (max_queued_messages ${MOSQUITTO_LIMITS.maxQueuedMessages}, max_inflight_messages ${MOSQUITTO_LIMITS.maxInflightMessages}, max_queued_bytes 0, sys_interval 1)`);
const rows: Row[] = [];
let ceiling: Awaited<ReturnType<typeof measureCeiling>> | undefined;
try {
  const key = generateKeyPair();
  const pub = join(root, 'fleet.pub');
  const priv = join(root, 'fleet.key');
  await writeKeyPair(key, { privateKeyPath: priv, publicKeyPath: pub });
  // A tiny YOLO (a thousand ORT sessions fit in memory) padded with random bytes to the package size.
  const pkg = await makeDetectorPackage(join(root, 'pkg'), 'bench-yolo', '1.0.0', key.privateKeyPem, 7, false, PACKAGE_BYTES);
  say(`package ${pkg.name}@${pkg.version}: ${(pkg.size / 1e6).toFixed(2)} MB, ${Math.ceil(pkg.size / (256 * 1024))} chunks of 256 KiB`);
  const sys = await SysWatcher.start(broker.url);

  for (const n of sizes) {
    rows.push(await runSize(n, pkg, pub, priv, sys));
    const r = rows.at(-1)!;
    say(`N=${n}: ${r.state} in ${r.seconds.toFixed(1)} s, ${r.succeeded}/${n} succeeded; free memory ${(freemem() / 2 ** 30).toFixed(1)} GiB`);
  }
  await sys.stop();
  say(`broker ceiling: mqtt.js publisher, 256 KiB QoS 1, ${CEILING_SUBSCRIBERS} subscribers, 10 s`);
  ceiling = await measureCeiling(broker.url, CEILING_SUBSCRIBERS, 10);
} finally {
  await broker.close();
  await rm(root, { recursive: true, force: true });
}

printTable(rows, ceiling!);

async function runSize(n: number, pkg: Awaited<ReturnType<typeof makeDetectorPackage>>, pub: string, priv: string, sys: SysWatcher): Promise<Row> {
  // A fresh fleet and fresh device folders per size, so that nothing of the previous size is reused.
  const dir = join(root, `n${n}`);
  const fleet = `bench${n}`;
  const server = await FleetServer.start({
    dataDir: join(dir, 'server'), fleet, httpPort: 0, broker: broker.url, protocolVersion: 5, trustedKeys: [pub], signKey: priv, tickMs: 250,
  });
  server.on('error', (err) => say(`fleet error: ${err.message}`));
  const record = await server.context.pushPackage(pkg.tar);
  // Children always (at least two, since one process would run the agents here), about 250 agents each.
  const processes = Math.max(2, Math.ceil(n / 250));
  say(`N=${n}: starting ${n} agents in ${processes} child processes`);
  const sim = await FleetSimulator.start({
    devices: n, profile: 'x86', broker: broker.url, fleet, keys: pub, root: join(dir, 'devices'), processes,
    protocolVersion: 5, warmup: 1, iterations: 3, staggerMs: 5, idPrefix: `b${n}`, onlineTimeoutMs: 300_000,
  });
  let agentErrors = 0;
  sim.on('agentError', () => { agentErrors += 1; });
  await waitFor(() => server.context.devices.list({ online: true }).length >= n, 120_000);
  say(`N=${n}: ${n} agents online in the fleet`);
  await delay(2000); // let the start-up benchmark chatter settle before measuring

  const pids = sim.processIds;
  const sys0 = sys.snapshot();
  sys.resetPeak();
  const cpu0 = process.cpuUsage();
  const kids0 = pids.reduce((s, p) => s + procCpuSeconds(p), 0);
  const mq0 = procCpuSeconds(broker.pid);
  let rssPeak = process.memoryUsage.rss();
  let kidsRssPeak = 0;
  const start = performance.now();
  const id = server.context.startRollout({
    package: { name: record.name, version: record.version }, target: { all: true },
    waves: { canary: { percent: 1 }, percents: [100] }, errorThreshold: 1, deviceTimeoutSec: 600,
    rate: { perMinute: 100_000 }, deploy: { transport: 'mqtt', benchmark: { warmup: 1, iterations: 3 } },
  });
  let last = '';
  let lastAt = 0;
  for (;;) {
    const r = server.context.rollouts.get(id)!;
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    kidsRssPeak = Math.max(kidsRssPeak, pids.reduce((s, p) => s + procRssBytes(p), 0));
    const ex = server.context.rollouts.executions(id);
    const count = (s: string): number => ex.filter((e) => e.state === s).length;
    const line = `wave ${r.currentWave + 1}/${r.waveCount} ${r.state}: ${count('succeeded')} ok, ${count('failed') + count('timed_out')} failed, ${count('queued')} queued`;
    // A line when the wave or state changes, else at most every 10 s.
    const head = line.slice(0, line.indexOf(':'));
    if (head !== last || Date.now() - lastAt > 10_000) {
      say(`N=${n}: ${line}`);
      last = head;
      lastAt = Date.now();
    }
    if (!['running', 'paused', 'awaiting_approval'].includes(r.state)) break;
    await delay(500);
  }
  const seconds = (performance.now() - start) / 1000;
  await delay(1100); // one more $SYS interval, so the counters include the end
  const cpu = process.cpuUsage(cpu0);
  const kids = pids.reduce((s, p) => s + procCpuSeconds(p), 0) - kids0;
  const mq = procCpuSeconds(broker.pid) - mq0;
  const sys1 = sys.snapshot();
  const span = seconds + 1.1;
  const r = server.context.rollouts.get(id)!;
  const ex = server.context.rollouts.executions(id);
  const row: Row = {
    devices: n, processes, seconds, state: r.state + (r.reason ? ` (${r.reason})` : ''),
    succeeded: ex.filter((e) => e.state === 'succeeded').length,
    failed: ex.filter((e) => ['failed', 'timed_out', 'rolled_back'].includes(e.state)).length,
    gbOut: (sys1.bytesSent - sys0.bytesSent) / 1e9, mbIn: (sys1.bytesReceived - sys0.bytesReceived) / 1e6, packageBytes: pkg.size,
    msgsPerSec: (sys1.messagesSent - sys0.messagesSent) / span,
    mbSentPerSec: (sys1.bytesSent - sys0.bytesSent) / span / 1e6,
    mbRecvPerSec: (sys1.bytesReceived - sys0.bytesReceived) / span / 1e6,
    // Mosquitto's load figures are bytes per minute (an exponential moving average).
    peakLoadMb: sys.peakLoad / 60 / 1e6,
    fleetCpuPct: ((cpu.user + cpu.system) / 1e6 / span) * 100,
    fleetRssMb: rssPeak / 2 ** 20,
    agentsCpuPct: (kids / span) * 100,
    agentsRssMb: kidsRssPeak / 2 ** 20,
    brokerCpuPct: (mq / span) * 100,
  };
  const codes = new Map<string, number>();
  for (const e of ex) if (e.code) codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
  if (codes.size > 0) say(`N=${n}: failure codes ${[...codes].map(([c, k]) => `${c}×${k}`).join(', ')}`);
  if (agentErrors > 0) say(`N=${n}: ${agentErrors} agent errors reported by the simulator`);
  await sim.stop();
  await server.close();
  await rm(dir, { recursive: true, force: true });
  return row;
}

function printTable(rs: Row[], c: Awaited<ReturnType<typeof measureCeiling>>): void {
  const cols = ['devices', 'time s', 'succeeded', 'msg/s', 'MB/s out', 'MB/s in', '1-min load peak MB/s', 'ceiling MB/s', 'fleet CPU %', 'fleet RSS MB', 'agents CPU %', 'agents RSS MB', 'broker CPU %'];
  console.log('');
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; ${process.env.BENCH_DEVICES ? `BENCH_DEVICES="${process.env.BENCH_DEVICES}"` : ''}`);
  console.log(`| ${cols.join(' | ')} |`);
  console.log(`|${cols.map(() => '---:').join('|')}|`);
  for (const r of rs) {
    console.log(`| ${[r.devices, r.seconds.toFixed(1), `${r.succeeded}/${r.devices}${r.failed ? ` (${r.failed} failed)` : ''}`, r.msgsPerSec.toFixed(0), r.mbSentPerSec.toFixed(1),
      r.mbRecvPerSec.toFixed(2), r.peakLoadMb.toFixed(1), c.mbPerSec.toFixed(0), r.fleetCpuPct.toFixed(0), r.fleetRssMb.toFixed(0), r.agentsCpuPct.toFixed(0),
      r.agentsRssMb.toFixed(0), r.brokerCpuPct.toFixed(0)].join(' | ')} |`);
  }
  console.log('');
  console.log(`ceiling: mqtt.js publisher (16 unacked 256 KiB QoS 1 frames) → Mosquitto → ${c.subscribers} QoS 1 subscribers, all clients in one Node process: ${c.mbPerSec.toFixed(0)} MB/s delivered over ${c.seconds.toFixed(1)} s (${c.frames} frames)`);
  for (const r of rs) {
    console.log(`N=${r.devices}: ${r.state}; the broker sent ${r.mbSentPerSec.toFixed(1)} MB/s on average = ${((r.mbSentPerSec / c.mbPerSec) * 100).toFixed(0)} % of the ceiling, while it received ${r.mbRecvPerSec.toFixed(2)} MB/s (the fleet's chunk frames plus the agents' requests and events)`);
    console.log(`  the broker sent ${r.gbOut.toFixed(2)} GB = ${((r.gbOut * 1e9) / (r.devices * r.packageBytes)).toFixed(1)} × what N devices need (N × package), and received ${r.mbIn.toFixed(0)} MB ≈ ${((r.mbIn * 1e6) / r.packageBytes).toFixed(1)} × the package published by the fleet`);
  }
}

async function waitFor(predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the devices to come online in the fleet');
    await delay(200);
  }
}
