import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMessage } from '@kd-edge/core';
import type { BenchMessage, Manifest } from '@kd-edge/core';
import { pickTarget } from '@kd-edge/edge-agent';
import { describe, expect, it } from 'vitest';
import { childExecArgv, resolveChildEntry } from '../src/simulator/child-host.js';
import { planDevices } from '../src/simulator/device-plan.js';
import { FleetSimulator } from '../src/simulator/fleet-simulator.js';
import { HARDWARE_PROFILES, deviceLatencyFactor, profileBenchTransform } from '../src/simulator/hardware-profiles.js';
import { writeProfileFacts } from '../src/simulator/profile-facts.js';
import { runSimulate } from '../src/simulator/run-simulate.js';
import { seededRandom } from '../src/simulator/seeded-random.js';

const measured: BenchMessage = {
  v: 1, type: 'bench', deviceId: 'sim-nano-001', commandId: 'd-1', ts: '2026-11-01T12:00:00.000Z',
  model: { name: 'shapes', version: '1.0.0', sha256: 'a'.repeat(64), file: 'model.onnx', precision: 'fp32' },
  runtime: 'onnxruntime', executionProvider: 'cpu', input: { name: 'images', shape: [1, 3, 64, 64] },
  batch: 1, warmup: 2, iterations: 10,
  latencyMs: { min: 1, mean: 2, p50: 2, p90: 3, p95: 3.5, p99: 4, max: 5 },
  throughputFps: 500, splitMs: { pre: 0.5, infer: 1.25, post: 0.25 }, rssMb: 200, cpuLoadPct: 50,
};

describe('simulator device plan', () => {
  it('names devices per profile, cycles profiles for mix, and puts each in its own folder', () => {
    const mix = planDevices(5, 'mix', '/data');
    expect(mix.map((d) => d.deviceId)).toEqual(['sim-nano-001', 'sim-orin-001', 'sim-x86-001', 'sim-nano-002', 'sim-orin-002']);
    expect(mix.map((d) => d.profile)).toEqual(['nano', 'orin', 'x86', 'nano', 'orin']);
    expect(mix[3]!.dataDir).toBe(join('/data', 'sim-nano-002'));
    expect(planDevices(1000, 'x86', '/d').at(-1)!.deviceId).toBe('sim-x86-1000');
    expect(() => planDevices(0, 'mix', '/d')).toThrow(RangeError);
    expect(() => planDevices(2, 'tx2' as never, '/d')).toThrow(/profile must be one of nano, orin, x86, mix/);
    expect(() => planDevices(2, 'nano', '/d', 'bad id')).toThrow(/prefix/);
  });
});

describe('hardware profiles', () => {
  it('seeded draws repeat for the same seed and differ between devices', () => {
    const a = seededRandom('7:sim-nano-001:faults');
    const b = seededRandom('7:sim-nano-001:faults');
    const c = seededRandom('7:sim-nano-002:faults');
    const xs = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(xs);
    expect(c()).not.toBe(xs[0]);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
  });

  it('scales latency and split by the factor and throughput inversely, with a Jetson tegrastats block for nano and orin', () => {
    const out = profileBenchTransform(HARDWARE_PROFILES.nano, 4, seededRandom('t'))(measured);
    expect(out.latencyMs).toEqual({ min: 4, mean: 8, p50: 8, p90: 12, p95: 14, p99: 16, max: 20 });
    expect(out.splitMs).toEqual({ pre: 2, infer: 5, post: 1 });
    expect(out.throughputFps).toBe(125);
    expect(out).toMatchObject({ deviceId: 'sim-nano-001', iterations: 10, rssMb: 200, cpuLoadPct: 50, model: measured.model });
    const t = out.tegrastats!;
    expect(t.totalPowerMw).toBe(t.powerMw.POM_5V_IN);
    expect(t.powerMw.POM_5V_IN).toBeGreaterThanOrEqual(4200);
    expect(t.powerMw.POM_5V_IN).toBeLessThanOrEqual(5600);
    expect(Object.keys(t.tempC)).toEqual(['CPU', 'GPU', 'PLL', 'AO', 'thermal']);
    expect(t.samples).toBe(1); // 12 runs × 8 ms ≈ 0.1 s: one tegrastats sample at 500 ms
    // still a valid protocol bench message
    expect(() => parseMessage('bench', out)).not.toThrow();
    expect(measured.latencyMs.p50).toBe(2); // the measured report is not modified in place

    const orin = profileBenchTransform(HARDWARE_PROFILES.orin, 0.5, seededRandom('t'))(measured);
    expect(orin.latencyMs.p95).toBe(1.75);
    expect(orin.throughputFps).toBe(1000);
    expect(Object.keys(orin.tegrastats!.powerMw)).toEqual(['VDD_IN', 'VDD_CPU_GPU_CV', 'VDD_SOC']);
  });

  it('leaves x86 reports as measured, and applies an x86 override factor without tegrastats', () => {
    expect(profileBenchTransform(HARDWARE_PROFILES.x86, 1, seededRandom('t'))(measured)).toBe(measured);
    const scaled = profileBenchTransform(HARDWARE_PROFILES.x86, 2, seededRandom('t'))(measured);
    expect(scaled.latencyMs.max).toBe(10);
    expect(scaled.tegrastats).toBeUndefined();
    expect(() => profileBenchTransform(HARDWARE_PROFILES.x86, 0, Math.random)).toThrow(RangeError);
  });

  it('gives each device a factor within its profile jitter, the same on every run', () => {
    const factors = Array.from({ length: 50 }, (_, i) => deviceLatencyFactor(HARDWARE_PROFILES.nano, seededRandom(`s:sim-nano-${i}:factor`)));
    for (const f of factors) expect(Math.abs(f - 4)).toBeLessThanOrEqual(4 * 0.06 + 1e-9);
    expect(new Set(factors).size).toBeGreaterThan(10);
    expect(deviceLatencyFactor(HARDWARE_PROFILES.nano, seededRandom('s:sim-nano-3:factor'))).toBe(factors[3]);
    expect(deviceLatencyFactor(HARDWARE_PROFILES.x86, Math.random)).toBe(1);
    expect(deviceLatencyFactor(HARDWARE_PROFILES.orin, () => 0.5, 2)).toBe(2);
  });

  it('gives each profile an architecture (and the Jetsons a TensorRT version) that picks its own file of a package', () => {
    // Only the fields pickTarget reads: the targets and the model entries they name.
    const manifest = {
      models: [
        { file: 'model.onnx', precision: 'fp32' }, { file: 'model.int8.onnx', precision: 'int8' }, { file: 'model.int8.u8s8.onnx', precision: 'int8' },
      ],
      targets: [
        { file: 'model.int8.u8s8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['x86_64'], quantization: 'u8s8' },
        { file: 'model.int8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['aarch64'], quantization: 's8s8' },
        { file: 'model.onnx', precision: 'fp32', runtime: 'onnxruntime', arch: ['x86_64', 'aarch64'] },
      ],
    } as unknown as Manifest;
    const served = (name: keyof typeof HARDWARE_PROFILES) => {
      const p = HARDWARE_PROFILES[name];
      return pickTarget(manifest, { arch: p.arch, tensorrt: p.tensorrt ?? null, executionProvider: 'cpu' }).model.file;
    };
    expect({ nano: served('nano'), orin: served('orin'), x86: served('x86') })
      .toEqual({ nano: 'model.int8.onnx', orin: 'model.int8.onnx', x86: 'model.int8.u8s8.onnx' });
    // a Jetson's arch agrees with the L4T release the agent reads
    for (const p of Object.values(HARDWARE_PROFILES).filter((q) => q.jetson !== undefined)) {
      expect(p.jetson!.tegraRelease).toContain(`EABI: ${p.arch}`);
      expect(p.tensorrt, p.name).toMatch(/^\d+\.\d+\.\d+$/);
    }
    expect(HARDWARE_PROFILES.x86.tensorrt).toBeUndefined();
  });

  it('writes the Jetson fact files the agents read instead of the host ones', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kd-sim-facts-'));
    try {
      await writeProfileFacts(dir);
      expect(await readFile(join(dir, 'nano', 'device-tree-model'), 'utf8')).toBe('NVIDIA Jetson Nano Developer Kit (simulated)\0');
      expect(await readFile(join(dir, 'orin', 'nv_tegra_release'), 'utf8')).toMatch(/^# R36 \(release\), REVISION: 3\.0,/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('simulator child processes and options', () => {
  it('finds the child entry next to the module and gives a .ts entry a loader and the source condition', () => {
    const entry = resolveChildEntry();
    expect(entry).toBe(fileURLToPath(new URL('../src/simulator/simulator-child.ts', import.meta.url)));
    const args = childExecArgv(entry, ['--enable-source-maps']);
    expect(args[0]).toBe('--import');
    expect(args[1]).toMatch(/^file:.*tsx.*\.mjs$/);
    expect(args).toContain('--enable-source-maps');
    expect(args.at(-1)).toBe('--conditions=source');
    expect(childExecArgv(entry, ['--import', 'tsx', '--conditions', 'source'])).toEqual(['--import', 'tsx', '--conditions', 'source']);
    expect(childExecArgv('/x/simulator-child.js', ['--max-old-space-size=512'])).toEqual(['--max-old-space-size=512']);
  });

  it('refuses bad options naming them', async () => {
    const base = { devices: 2, broker: 'mqtt://127.0.0.1:1', keys: 'k.pub', root: '/tmp/x' };
    await expect(FleetSimulator.start({ ...base, devices: 0 })).rejects.toThrow(/devices must be an integer/);
    await expect(FleetSimulator.start({ ...base, broker: 'http://x' })).rejects.toThrow(/broker must be/);
    await expect(FleetSimulator.start({ ...base, failRate: 1.5 })).rejects.toThrow(/failRate must be a number 0\.\.1/);
    await expect(FleetSimulator.start({ ...base, processes: 0 })).rejects.toThrow(/processes must be/);
    await expect(FleetSimulator.start({ ...base, keys: [] })).rejects.toThrow(/keys must name/);
    const root = await mkdtemp(join(tmpdir(), 'kd-sim-opts-'));
    try {
      await expect(FleetSimulator.start({ ...base, keys: join(root, 'missing.pub'), root })).rejects.toMatchObject({
        code: 'FLEET_SIM_AGENT_START', message: expect.stringMatching(/^simulated device sim-nano-001 did not start: keys: .*missing\.pub/),
      });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
    await expect(runSimulate({ devices: 'many', key: 'k.pub' })).rejects.toThrow(/--devices must be an integer 1\.\.100000, got "many"/);
    await expect(runSimulate({ devices: 2 })).rejects.toThrow(/--key FILE is needed/);
    await expect(runSimulate({ devices: 2, key: 'k', profile: 'tx2' })).rejects.toThrow(/--profile must be nano, orin, x86 or mix/);
    await expect(runSimulate({ devices: 2, key: 'k', failRate: 'x' })).rejects.toThrow(/--fail-rate/);
  });
});
