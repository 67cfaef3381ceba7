import { join } from 'node:path';
import { HARDWARE_PROFILE_NAMES, type HardwareProfileName } from './hardware-profiles.js';

/** One simulated device: its id, profile and data folder. */
export interface SimDeviceSpec {
  deviceId: string;
  profile: HardwareProfileName;
  dataDir: string;
}

/** A profile for every device, or `mix` to cycle nano, orin, x86. */
export type ProfileChoice = HardwareProfileName | 'mix';

/**
 * Names `count` devices `<prefix>-<profile>-<nnn>` (numbered per profile from 001, so ids stay the same from run
 * to run and data folders are reused), each with the folder `<root>/<deviceId>`.
 * @example planDevices(3, 'mix', '/tmp/sim').map((d) => d.deviceId); // ['sim-nano-001', 'sim-orin-001', 'sim-x86-001']
 */
export function planDevices(count: number, profile: ProfileChoice, root: string, prefix = 'sim'): SimDeviceSpec[] {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${String(count)}`);
  if (profile !== 'mix' && !HARDWARE_PROFILE_NAMES.includes(profile)) {
    throw new RangeError(`profile must be one of ${[...HARDWARE_PROFILE_NAMES, 'mix'].join(', ')}, got ${String(profile)}`);
  }
  // The id must stay a valid device id: [A-Za-z0-9][A-Za-z0-9_-]{0,63}.
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$/.test(prefix)) throw new RangeError(`prefix must be letters, digits, _ or - (at most 41), got ${JSON.stringify(prefix)}`);
  const counters = new Map<HardwareProfileName, number>();
  const specs: SimDeviceSpec[] = [];
  for (let i = 0; i < count; i++) {
    const p = profile === 'mix' ? HARDWARE_PROFILE_NAMES[i % HARDWARE_PROFILE_NAMES.length]! : profile;
    const n = (counters.get(p) ?? 0) + 1;
    counters.set(p, n);
    const deviceId = `${prefix}-${p}-${String(n).padStart(3, '0')}`;
    specs.push({ deviceId, profile: p, dataDir: join(root, deviceId) });
  }
  return specs;
}
