/** A TensorRT version split into its parts. */
export interface TrtVersion {
  major: number;
  minor: number;
  patch: number;
}

/**
 * Parses a TensorRT version such as `8.6.1`, `10.3.0` or `8.6.1.6` (the build number is ignored; a missing patch
 * is 0). Throws a RangeError naming `trtVersion` otherwise.
 */
export function parseTrtVersion(version: string): TrtVersion {
  const m = typeof version === 'string' ? /^(\d{1,2})\.(\d{1,2})(?:\.(\d{1,2}))?(?:\.\d{1,4})?$/.exec(version) : null;
  if (!m) {
    throw new RangeError(`trtVersion must look like 8.6.1 or 10.3.0, got ${JSON.stringify(version)}`);
  }
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  if (major < 1) throw new RangeError(`trtVersion major must be at least 1, got ${JSON.stringify(version)}`);
  // Before TensorRT 10 the version integer gives the minor one decimal digit.
  if (major < 10 && minor > 9) {
    throw new RangeError(`trtVersion minor must be 0..9 before TensorRT 10, got ${JSON.stringify(version)}`);
  }
  return { major, minor, patch };
}

/**
 * The integer TensorRT writes into calibration-cache headers and banners (`NV_TENSORRT_VERSION`):
 * major·1000 + minor·100 + patch before TensorRT 10 (8.6.1 → 8601, as in `TRT-8601-EntropyCalibration2`), and
 * major·10000 + minor·100 + patch from 10 on (10.3.0 → 100300, as trtexec's `[TensorRT v100300]`; NvInferVersion.h of
 * TensorRT 10 defines it so). The TensorRT 10 cache header itself has not been checked against a real cache.
 * @example trtVersionNumber('8.6.1') // 8601
 */
export function trtVersionNumber(version: string): number {
  const { major, minor, patch } = parseTrtVersion(version);
  return major >= 10 ? major * 10000 + minor * 100 + patch : major * 1000 + minor * 100 + patch;
}

/** Whether `version` is at least `major.minor`. */
export function trtAtLeast(version: TrtVersion, major: number, minor: number): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}
