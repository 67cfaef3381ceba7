import { parseSemver } from '../package/semver.js';
import { isDeviceId, isModelVersion, MAX_VERSION_LENGTH } from './ids.js';

/** The build-metadata identifier that marks an adapted version: `{base}+adapt.{device}.{n}`. */
export const ADAPT_BUILD_TAG = 'adapt';

/** An adapted version split into its parts by {@link parseAdaptedVersion}. */
export interface AdaptedVersion {
  /** The version that was adapted, as released by the fleet (never itself an adapted version). */
  base: string;
  /** The device that adapted it. */
  deviceId: string;
  /** The device's counter for this base, from 1. */
  n: number;
}

// Semver build identifiers are [0-9A-Za-z-]+; device ids also allow "_". An id without "_" is used as it is
// (it starts with a letter or digit, as every device id does). One with "_" is written as "-" followed by the id
// with "-" → "--" and "_" → "-u": only this form starts with "-", and within it each "-" opens a two-character
// escape, so every identifier decodes one way and the map is injective.
function encodeDeviceId(deviceId: string): string {
  if (!deviceId.includes('_')) return deviceId;
  return `-${deviceId.replace(/[-_]/g, (c) => (c === '-' ? '--' : '-u'))}`;
}

function decodeDeviceId(identifier: string): string | undefined {
  if (!identifier.startsWith('-')) return isDeviceId(identifier) ? identifier : undefined;
  let out = '';
  const body = identifier.slice(1);
  for (let i = 0; i < body.length; i++) {
    if (body[i] !== '-') {
      out += body[i];
      continue;
    }
    const next = body[++i];
    if (next === '-') out += '-';
    else if (next === 'u') out += '_';
    else return undefined;
  }
  // An escaped id without "_" would be a second spelling of the plain one: refused, so each id has one form.
  return out.includes('_') && isDeviceId(out) ? out : undefined;
}

/**
 * Split an adapted version (`1.0.0+adapt.cam-01.1`) into its base, device and counter, or return undefined
 * when `version` is not one. The inverse of {@link adaptedVersion}.
 * @example
 * parseAdaptedVersion('1.0.0+build.5.adapt.-cam-u01.2'); // { base: '1.0.0+build.5', deviceId: 'cam_01', n: 2 }
 */
export function parseAdaptedVersion(version: string): AdaptedVersion | undefined {
  if (!isModelVersion(version)) return undefined;
  const build = parseSemver(version)?.build ?? [];
  if (build.length < 3) return undefined;
  const [tag, device, count] = build.slice(-3);
  if (tag !== ADAPT_BUILD_TAG || !/^[1-9]\d{0,15}$/.test(count ?? '') || !Number.isSafeInteger(Number(count))) return undefined;
  const deviceId = decodeDeviceId(device ?? '');
  if (deviceId === undefined) return undefined;
  const rest = build.slice(0, -3);
  const plus = version.indexOf('+');
  return { base: rest.length === 0 ? version.slice(0, plus) : `${version.slice(0, plus)}+${rest.join('.')}`, deviceId, n: Number(count) };
}

/**
 * The version of the `n`-th adaptation of `base` on device `deviceId`: `base` with the build metadata
 * `adapt.{device}.{n}` appended (`1.0.0` → `1.0.0+adapt.cam-01.1`; `1.0.0+build.5` → `1.0.0+build.5.adapt.cam-01.1`).
 * Build metadata does not change semver precedence, so it ranks equal to its base. A device id with `_` is
 * escaped (`cam_01` → `-cam-u01`), as build metadata allows only `[0-9A-Za-z-]`. Throws a RangeError naming the
 * argument when `base` is not a version or is itself an adapted one (adapt from its base), `deviceId` is not a
 * device id, `n` is not a positive safe integer, or the result would exceed {@link MAX_VERSION_LENGTH}.
 * @example
 * adaptedVersion('1.0.0', 'cam-01', 1); // '1.0.0+adapt.cam-01.1'
 */
export function adaptedVersion(base: string, deviceId: string, n: number): string {
  if (!isModelVersion(base)) throw new RangeError(`base must be a semver 2.0.0 version, got ${JSON.stringify(base)}`);
  const parsed = parseAdaptedVersion(base);
  if (parsed !== undefined) throw new RangeError(`base must not be an adapted version; ${JSON.stringify(base)} adapts ${JSON.stringify(parsed.base)}, name the next adaptation of that`);
  if (!isDeviceId(deviceId)) throw new RangeError(`deviceId must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}, got ${JSON.stringify(deviceId)}`);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`n must be a safe integer >= 1, got ${String(n)}`);
  const version = `${base}${base.includes('+') ? '.' : '+'}${ADAPT_BUILD_TAG}.${encodeDeviceId(deviceId)}.${n}`;
  if (version.length > MAX_VERSION_LENGTH) {
    throw new RangeError(`the adapted version ${JSON.stringify(version)} is longer than ${MAX_VERSION_LENGTH} characters; base and deviceId are too long together`);
  }
  return version;
}
