import { parseTrtVersion } from '@kd-edge/core/tensorrt';
import type { DeviceRecord } from './device-record.js';

/**
 * What a device's latest status says about its TensorRT: a version (`major.minor.patch`, as `kd-trainer export
 * --trt-versions` and the agent's cache match take it, with `raw` the status's own spelling), a string that is no
 * TensorRT version, none (the status reports hardware without TensorRT), or nothing yet (no status with hardware).
 */
export type DeviceTensorrt =
  | { state: 'reported'; version: string; raw: string }
  | { state: 'unrecognised'; raw: string }
  | { state: 'none' }
  | { state: 'not-reported' };

/** The Jetson model and L4T release of devices that report one TensorRT version (`null` for a device off Jetson). */
export interface TensorrtPlatform {
  jetson: string | null;
  l4t: string | null;
  devices: number;
}

/** One TensorRT version the fleet's devices report. */
export interface TensorrtVersionGroup {
  /** `major.minor.patch` (`8.6.1.6` is counted as `8.6.1`: a calibration cache names three parts). */
  tensorrt: string;
  devices: number;
  deviceIds: string[];
  /** The spellings the statuses used, when one differs from `tensorrt` (`8.6.1.6`). */
  reported: string[];
  /** Which Jetson models and L4T releases report it, most devices first. */
  platforms: TensorrtPlatform[];
}

/** The TensorRT versions of a set of devices (`GET /api/tensorrt-versions`). */
export interface FleetTensorrtVersions {
  /** Devices looked at. */
  devices: number;
  /** The distinct versions, oldest first. */
  versions: TensorrtVersionGroup[];
  /** Devices whose status reports no TensorRT (they serve with ONNX Runtime). */
  withoutTensorrt: number;
  /** Devices with no status that describes their hardware yet. */
  notReported: number;
  /** Devices whose status names something that is not a TensorRT version; no calibration cache can match them. */
  unrecognised: Array<{ tensorrt: string; deviceIds: string[] }>;
}

/** `8.6.1.6` → `8.6.1`, `8.2` → `8.2.0`; undefined for a string that is no TensorRT version. */
export function exactTrtVersion(raw: string): string | undefined {
  try {
    const { major, minor, patch } = parseTrtVersion(raw);
    return `${major}.${minor}.${patch}`;
  } catch {
    return undefined;
  }
}

/** The TensorRT a device's latest status reports; see {@link DeviceTensorrt}. */
export function deviceTensorrt(device: DeviceRecord): DeviceTensorrt {
  const hardware = device.status?.hardware;
  if (hardware === undefined || hardware === null) return { state: 'not-reported' };
  const raw = hardware.tensorrt;
  if (raw === undefined || raw === null || raw.trim() === '') return { state: 'none' };
  const version = exactTrtVersion(raw.trim());
  return version === undefined ? { state: 'unrecognised', raw } : { state: 'reported', version, raw };
}

/** Orders `major.minor.patch` strings by version. */
export function compareTrtVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/**
 * The distinct TensorRT versions the devices' latest statuses report, each with its devices and the Jetson models
 * and L4T releases behind it, and how many devices report none or nothing yet: the `--trt-versions` a package for
 * these devices needs (issue 17).
 * @example
 * tensorrtVersions(registry.list()).versions.map((v) => v.tensorrt).join(',') // '8.2.1,10.3.0'
 */
export function tensorrtVersions(devices: readonly DeviceRecord[]): FleetTensorrtVersions {
  const groups = new Map<string, { ids: string[]; reported: Set<string>; platforms: Map<string, TensorrtPlatform> }>();
  const unrecognised = new Map<string, string[]>();
  let withoutTensorrt = 0;
  let notReported = 0;
  for (const d of devices) {
    const t = deviceTensorrt(d);
    if (t.state === 'none') withoutTensorrt++;
    else if (t.state === 'not-reported') notReported++;
    else if (t.state === 'unrecognised') unrecognised.set(t.raw, [...(unrecognised.get(t.raw) ?? []), d.id]);
    else {
      let g = groups.get(t.version);
      if (g === undefined) groups.set(t.version, (g = { ids: [], reported: new Set(), platforms: new Map() }));
      g.ids.push(d.id);
      if (t.raw !== t.version) g.reported.add(t.raw);
      const jetson = d.status?.hardware?.jetson ?? null;
      const platform = { jetson: jetson?.model ?? null, l4t: jetson?.l4t ?? null };
      const key = JSON.stringify(platform);
      const p = g.platforms.get(key);
      if (p === undefined) g.platforms.set(key, { ...platform, devices: 1 });
      else p.devices++;
    }
  }
  const versions = [...groups.entries()]
    .sort(([a], [b]) => compareTrtVersions(a, b))
    .map(([tensorrt, g]): TensorrtVersionGroup => ({
      tensorrt,
      devices: g.ids.length,
      deviceIds: g.ids,
      reported: [...g.reported].sort(),
      platforms: [...g.platforms.values()].sort((a, b) => b.devices - a.devices || String(a.jetson).localeCompare(String(b.jetson))),
    }));
  return {
    devices: devices.length,
    versions,
    withoutTensorrt,
    notReported,
    unrecognised: [...unrecognised.entries()].map(([tensorrt, deviceIds]) => ({ tensorrt, deviceIds })),
  };
}
