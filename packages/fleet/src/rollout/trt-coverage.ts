import type { Manifest } from '@kd-edge/core/package';
import { TarReader } from '@kd-edge/core/package';
import { validateTrtPlan } from '@kd-edge/core/tensorrt';
import type { Logger } from '@kd-edge/core/util';
import type { DeviceRecord } from '../devices/device-record.js';
import { compareTrtVersions, deviceTensorrt, exactTrtVersion } from '../devices/tensorrt-versions.js';
import type { PackageRecord } from '../registry/package-record.js';
import type { RolloutInfo, WaveInfo } from './rollout-types.js';
import type { RolloutWarning, RolloutWarningStore } from './rollout-warnings.js';

/** Which TensorRT versions a package builds engines for, as a device's agent would read it. */
export interface PackageTrtCoverage {
  /** Whether a device with TensorRT builds an engine from the package at all (a plan, and a TensorRT target or no targets). */
  tensorrt: boolean;
  /** `major.minor.patch` of every version with a plan. */
  versions: string[];
  /** The versions with an int8 calibration cache; a device of any other version builds fp16. */
  int8: string[];
}

/** Most device ids a warning's message names (its `devices` holds them all). */
const NAMED_IN_MESSAGE = 5;

/**
 * The TensorRT versions a package covers: its `tensorrt.versions` entries (issue 17), or, for a package with the single
 * plan, the version its `trt-plan.json` names (read from the stored `.tar`), int8 when that plan has a calibration cache.
 * Mirrors the agent's `pickTensorrt`: without a plan, or with `targets` none of which is TensorRT, TensorRT is not used.
 */
export async function packageTrtCoverage(pkg: Pick<PackageRecord, 'manifest' | 'path'>): Promise<PackageTrtCoverage> {
  const m: Manifest = pkg.manifest;
  const trt = m.tensorrt;
  if (trt === undefined || (m.targets !== undefined && !m.targets.some((t) => t.runtime === 'tensorrt'))) {
    return { tensorrt: false, versions: [], int8: [] };
  }
  if (trt.versions !== undefined) {
    return {
      tensorrt: true,
      versions: trt.versions.map((e) => e.trtVersion),
      int8: trt.versions.filter((e) => e.calibCache !== undefined).map((e) => e.trtVersion),
    };
  }
  const tar = await TarReader.open(pkg.path);
  try {
    const entry = tar.get(trt.plan);
    if (entry === undefined || entry.type !== 'file') throw new Error(`${trt.plan}, the manifest's tensorrt.plan, is not in ${pkg.path}`);
    const plan = validateTrtPlan(JSON.parse((await tar.read(entry)).toString('utf8')) as unknown);
    const version = exactTrtVersion(plan.trtVersion) ?? plan.trtVersion;
    return { tensorrt: true, versions: [version], int8: plan.calibCacheFile !== undefined ? [version] : [] };
  } finally {
    await tar.close();
  }
}

/**
 * `FLEET_TRT_NO_CACHE` warnings for the target devices whose TensorRT version has no int8 calibration cache in the
 * package, one per version, oldest first: their agents build the engine fp16 (by design, so the rollout goes on).
 * None when the package does not use TensorRT or has no int8 cache at all (it is fp16 everywhere), and none for
 * devices without TensorRT or that have not reported their hardware.
 * @example
 * trtCoverageWarnings({ name: 'shapes', version: '1.0.0' }, { tensorrt: true, versions: ['10.3.0'], int8: ['10.3.0'] }, devices)
 * // [{ code: 'FLEET_TRT_NO_CACHE', tensorrt: '8.2.1', devices: ['nano-1'], message: '1 target device reports TensorRT 8.2.1 … will build fp16 …' }]
 */
export function trtCoverageWarnings(
  pkg: { name: string; version: string }, coverage: PackageTrtCoverage, devices: readonly DeviceRecord[],
): RolloutWarning[] {
  if (!coverage.tensorrt || coverage.int8.length === 0) return [];
  const missing = new Map<string, string[]>();
  for (const d of devices) {
    const t = deviceTensorrt(d);
    // An unrecognised string matches no cache either: the agent builds fp16 there too.
    const version = t.state === 'reported' ? t.version : t.state === 'unrecognised' ? t.raw : undefined;
    if (version === undefined || coverage.int8.includes(version)) continue;
    missing.set(version, [...(missing.get(version) ?? []), d.id]);
  }
  const byVersion = (a: string, b: string): number => {
    const [ea, eb] = [exactTrtVersion(a), exactTrtVersion(b)];
    return ea !== undefined && eb !== undefined ? compareTrtVersions(ea, eb) : ea !== undefined ? -1 : eb !== undefined ? 1 : a.localeCompare(b);
  };
  const wanted = [...new Set([...coverage.int8, ...[...missing.keys()].filter((v) => exactTrtVersion(v) !== undefined)])].sort(byVersion);
  return [...missing.entries()].sort(([a], [b]) => byVersion(a, b)).map(([tensorrt, ids]) => {
    const named = ids.slice(0, NAMED_IN_MESSAGE).join(', ') + (ids.length > NAMED_IN_MESSAGE ? `, … (${ids.length - NAMED_IN_MESSAGE} more)` : '');
    const fix = exactTrtVersion(tensorrt) !== undefined
      ? `; to serve int8 there, export with --trt-versions ${wanted.join(',')} and roll out that package`
      : '; it is not a TensorRT version, so no calibration cache can match it';
    return {
      code: 'FLEET_TRT_NO_CACHE',
      tensorrt,
      devices: ids,
      message: `${ids.length} target device${ids.length === 1 ? ' reports' : 's report'} TensorRT ${exactTrtVersion(tensorrt) !== undefined ? tensorrt : JSON.stringify(tensorrt)} (${named}), for which ` +
        `${pkg.name}@${pkg.version} has no int8 calibration cache (it has ${coverage.int8.join(', ')}): ${ids.length === 1 ? 'its engine' : 'their engines'} will build fp16${fix}`,
    };
  });
}

/** What {@link checkRolloutTrtCoverage} reads and writes: a FleetContext has each. */
export interface TrtCoverageDeps {
  registry: { get(name: string, version: string): PackageRecord | undefined };
  devices: { get(id: string): DeviceRecord | undefined };
  rollouts: { get(id: string): RolloutInfo | undefined; waves(id: string): WaveInfo[] };
  /** Where the warnings are recorded with the rollout; without it they are only returned. */
  rolloutWarnings?: RolloutWarningStore | undefined;
  logger: Logger;
}

/**
 * Compare a rollout's package with the TensorRT versions its target devices report, right after it started
 * ({@link trtCoverageWarnings}); record the warnings with the rollout, log each, and return them. A package whose
 * TensorRT files cannot be read gives one `FLEET_TRT_UNCHECKED` warning instead of failing: the rollout is under way.
 * @example
 * const id = ctx.startRollout(body);
 * const warnings = await checkRolloutTrtCoverage(ctx, id);
 */
export async function checkRolloutTrtCoverage(deps: TrtCoverageDeps, rolloutId: string): Promise<RolloutWarning[]> {
  const rollout = deps.rollouts.get(rolloutId);
  if (rollout === undefined) throw new RangeError(`rolloutId: no rollout ${JSON.stringify(rolloutId)}`);
  const { name, version } = rollout.package;
  const targets = deps.rollouts.waves(rolloutId).flatMap((w) => w.deviceIds);
  let warnings: RolloutWarning[];
  try {
    const pkg = deps.registry.get(name, version);
    if (pkg === undefined) throw new Error(`${name}@${version} is no longer in the registry`);
    const devices = targets.map((id) => deps.devices.get(id)).filter((d): d is DeviceRecord => d !== undefined);
    warnings = trtCoverageWarnings(rollout.package, await packageTrtCoverage(pkg), devices);
  } catch (err) {
    warnings = [{
      code: 'FLEET_TRT_UNCHECKED',
      devices: targets,
      message: `could not read the TensorRT files of ${name}@${version} (${(err as Error).message}): which target devices will build fp16 is not known`,
    }];
  }
  deps.rolloutWarnings?.set(rolloutId, warnings);
  for (const w of warnings) deps.logger.warn(`rollout ${rolloutId}: ${w.code}: ${w.message}`);
  return warnings;
}
