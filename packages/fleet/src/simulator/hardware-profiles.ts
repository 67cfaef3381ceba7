import type { BenchMessage } from '@kd-edge/core/protocol';

/** The hardware a simulated device pretends to be. */
export type HardwareProfileName = 'nano' | 'orin' | 'x86';

/** Every profile, in the order `mix` cycles through them. */
export const HARDWARE_PROFILE_NAMES: readonly HardwareProfileName[] = ['nano', 'orin', 'x86'];

type Range = readonly [min: number, max: number];

/** What tegrastats would report on a Jetson during a benchmark: a range per figure, drawn per report. */
export interface TegrastatsTemplate {
  /** Rails in mW; the first one is the board's input rail (the total). */
  powerMw: Readonly<Record<string, Range>>;
  tempC: Readonly<Record<string, Range>>;
  gpuLoadPct: Range;
  ramUsedMb: Range;
}

/** A simulated hardware profile: how much slower or faster than this machine it is, and what a Jetson says about itself. */
export interface HardwareProfile {
  name: HardwareProfileName;
  /** Measured latency is multiplied by this (throughput divided). Illustrative, see {@link HARDWARE_PROFILES}. */
  latencyFactor: number;
  /** Per-device spread of the factor (0.05: each device is up to 5 % off), drawn once per device from its seed. */
  jitter: number;
  /**
   * The CPU architecture the device's agent picks its model file for (`uname -m` spelling), whatever the host's: a
   * package with `targets` then serves each simulated device the file a real one of that kind would (issue 17).
   */
  arch: 'x86_64' | 'aarch64';
  /** The TensorRT version the device would report (JetPack's), absent without TensorRT. */
  tensorrt?: string;
  /** Jetson facts the agent reads at start (device-tree model and /etc/nv_tegra_release), absent off Jetson. */
  jetson?: { deviceTreeModel: string; tegraRelease: string; tegrastats: TegrastatsTemplate };
}

/**
 * The profiles. The latency factors are ILLUSTRATIVE, not measurements: they are round ratios in the spirit of
 * published YOLOv5n figures (Ultralytics' YOLOv5 table gives YOLOv5n at 640 px ≈ 45 ms per image on a CPU at
 * batch 1; community reports for a Jetson Nano — quad Cortex-A57, 128-core Maxwell — are several times slower than a
 * desktop CPU, and an Orin Nano with a GPU provider is faster than one). So: nano ×4 slower than the machine running
 * the simulator, orin ×0.6, x86 as measured. Override them with `SimulatorOptions.latencyFactors` to model something
 * specific. The tegrastats ranges are plausible values for a Nano at 10 W and an Orin Nano at 15 W under inference
 * (rail and zone names as those boards print them), chosen so the dashboard has figures, not measured either.
 */
export const HARDWARE_PROFILES: Readonly<Record<HardwareProfileName, HardwareProfile>> = {
  nano: {
    name: 'nano',
    latencyFactor: 4,
    jitter: 0.06,
    // JetPack 4.6.x (L4T R32.7) ships TensorRT 8.2.1.
    arch: 'aarch64',
    tensorrt: '8.2.1',
    jetson: {
      deviceTreeModel: 'NVIDIA Jetson Nano Developer Kit (simulated)',
      tegraRelease: '# R32 (release), REVISION: 7.1, GCID: 0, BOARD: t210ref, EABI: aarch64, DATE: simulated',
      tegrastats: {
        powerMw: { POM_5V_IN: [4200, 5600], POM_5V_GPU: [1100, 1900], POM_5V_CPU: [800, 1400] },
        tempC: { CPU: [42, 55], GPU: [40, 52], PLL: [38, 48], AO: [44, 52], thermal: [41, 52] },
        gpuLoadPct: [60, 95],
        ramUsedMb: [1900, 2600],
      },
    },
  },
  orin: {
    name: 'orin',
    latencyFactor: 0.6,
    jitter: 0.05,
    // JetPack 6.0 (L4T R36.3) ships TensorRT 8.6.2.
    arch: 'aarch64',
    tensorrt: '8.6.2',
    jetson: {
      deviceTreeModel: 'NVIDIA Jetson Orin Nano Developer Kit (simulated)',
      tegraRelease: '# R36 (release), REVISION: 3.0, GCID: 0, BOARD: generic, EABI: aarch64, DATE: simulated',
      tegrastats: {
        powerMw: { VDD_IN: [6000, 8500], VDD_CPU_GPU_CV: [2200, 3600], VDD_SOC: [1300, 1700] },
        tempC: { cpu: [48, 58], gpu: [47, 57], soc0: [46, 55], soc1: [46, 55], soc2: [46, 55], tj: [49, 60] },
        gpuLoadPct: [55, 85],
        ramUsedMb: [2800, 3600],
      },
    },
  },
  x86: { name: 'x86', latencyFactor: 1, jitter: 0, arch: 'x86_64' },
};

/** tegrastats' default sampling interval, to say how many samples a benchmark of a given length would have. */
const TEGRASTATS_INTERVAL_MS = 500;

const round3 = (v: number): number => Math.round(v * 1000) / 1000;
const draw = (random: () => number, [min, max]: Range): number => min + (max - min) * random();

/**
 * The benchmark rewrite of one simulated device: latency and split scaled by `factor` (throughput divided by it),
 * and, for a Jetson profile, a tegrastats block drawn from the profile's ranges with `random`. A factor of 1 on a
 * profile without Jetson facts returns the report unchanged (x86 reports what was measured).
 */
export function profileBenchTransform(profile: HardwareProfile, factor: number, random: () => number): (bench: BenchMessage) => BenchMessage {
  if (!(factor > 0) || !Number.isFinite(factor)) throw new RangeError(`factor must be a positive number, got ${String(factor)}`);
  return (bench) => {
    if (factor === 1 && profile.jetson === undefined) return bench;
    const l = bench.latencyMs;
    const out: BenchMessage = {
      ...bench,
      latencyMs: {
        min: round3(l.min * factor), mean: round3(l.mean * factor), p50: round3(l.p50 * factor), p90: round3(l.p90 * factor),
        p95: round3(l.p95 * factor), p99: round3(l.p99 * factor), max: round3(l.max * factor),
      },
      splitMs: { pre: round3(bench.splitMs.pre * factor), infer: round3(bench.splitMs.infer * factor), post: round3(bench.splitMs.post * factor) },
      throughputFps: round3(bench.throughputFps / factor),
    };
    const t = profile.jetson?.tegrastats;
    if (t !== undefined) {
      const wallMs = (bench.warmup + bench.iterations) * out.latencyMs.mean;
      const powerMw = Object.fromEntries(Object.entries(t.powerMw).map(([rail, r]) => [rail, Math.round(draw(random, r))]));
      out.tegrastats = {
        samples: Math.max(1, Math.round(wallMs / TEGRASTATS_INTERVAL_MS)),
        totalPowerMw: Object.values(powerMw)[0]!,
        powerMw,
        tempC: Object.fromEntries(Object.entries(t.tempC).map(([zone, r]) => [zone, round3(draw(random, r))])),
        gpuLoadPct: round3(draw(random, t.gpuLoadPct)),
        ramUsedMb: Math.round(draw(random, t.ramUsedMb)),
      };
    }
    return out;
  };
}

/** The factor of one device: the profile's (or an override) times a per-device jitter in [1 - jitter, 1 + jitter]. */
export function deviceLatencyFactor(profile: HardwareProfile, random: () => number, override?: number): number {
  const base = override ?? profile.latencyFactor;
  if (!(base > 0) || !Number.isFinite(base)) throw new RangeError(`latency factor of ${profile.name} must be a positive number, got ${String(base)}`);
  if (profile.jitter === 0) return base;
  return round3(base * (1 + profile.jitter * (2 * random() - 1)));
}
