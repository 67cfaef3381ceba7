/**
 * `node --conditions=source --import tsx packages/fleet/bench/device-list.bench.ts`: what `GET /api/devices` costs
 * in SQLite for a large fleet — the device list and every device's latest bench report — with
 * BENCH_DEVICES (default 1000) devices holding BENCH_REPORTS (default 100) bench reports each, on disk (WAL).
 * Prints figures; asserts nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetTopics, makeBench } from '@kd-edge/core';
import { coreMigrations } from '../src/db/core-migrations.js';
import { migrate } from '../src/db/migrate.js';
import { openDatabase } from '../src/db/open-database.js';
import { DeviceRegistry } from '../src/devices/device-registry.js';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 1000);
const REPORTS = Number(process.env.BENCH_REPORTS ?? 100);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = await mkdtemp(join(tmpdir(), 'kd-device-list-bench-'));
try {
  const db = openDatabase(join(dir, 'fleet.db'));
  migrate(db, coreMigrations);
  const devices = new DeviceRegistry(db, { fleet: 'bench', benchKeep: REPORTS });
  const topics = fleetTopics('bench');
  const t0 = performance.now();
  for (let d = 0; d < DEVICES; d++) {
    const id = `dev-${String(d).padStart(4, '0')}`;
    for (let i = 0; i < REPORTS; i++) {
      const p95 = 5 + ((d * 7 + i * 13) % 50);
      const msg = makeBench({
        deviceId: id, ts: new Date(Date.UTC(2026, 4, 1) + i * 1000).toISOString(),
        model: { name: 'shapes', version: '1.0.0', sha256: 'a'.repeat(64), file: 'model.onnx' },
        runtime: 'onnxruntime', executionProvider: 'CPUExecutionProvider', input: { name: 'images', shape: [1, 3, 320, 320] },
        batch: 1, warmup: 1, iterations: 10, latencyMs: { min: 1, mean: p95 / 2, p50: p95 / 2, p90: p95 - 1, p95, p99: p95 + 1, max: p95 + 2 },
        throughputFps: 1000 / p95, splitMs: { pre: 0.1, infer: 1, post: 0.1 }, rssMb: 100, cpuLoadPct: 20,
      });
      devices.handleMessage(topics.bench(id), Buffer.from(JSON.stringify(msg)));
    }
  }
  const fill = performance.now() - t0;
  const listMs: number[] = [];
  const latestMs: number[] = [];
  for (let k = 0; k < 20; k++) {
    let t = performance.now();
    devices.list();
    listMs.push(performance.now() - t);
    t = performance.now();
    const latest = devices.latestBenches();
    latestMs.push(performance.now() - t);
    if (latest.size !== DEVICES) throw new Error(`expected ${DEVICES} latest reports, got ${latest.size}`);
  }
  console.log(`device list bench: ${DEVICES} devices x ${REPORTS} bench reports (filled in ${(fill / 1000).toFixed(1)} s)`);
  console.log(`devices.list()            median ${median(listMs).toFixed(1)} ms, max ${Math.max(...listMs).toFixed(1)} ms (20 runs)`);
  console.log(`devices.latestBenches()   median ${median(latestMs).toFixed(1)} ms, max ${Math.max(...latestMs).toFixed(1)} ms (20 runs)`);
  db.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
