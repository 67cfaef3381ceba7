import { isSemver } from '@kd-edge/core';
import { StoreError } from './store-error.js';

/** What identifies an installed package: its manifest name and version and the SHA-256 of the package tar. */
export interface VersionInfo {
  name: string;
  version: string;
  /** SHA-256 of the package `.tar`, lower-case hex. */
  sha256: string;
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
const KEY_RE = /^([a-z0-9][a-z0-9._-]{0,63})@(.+)-([0-9a-f]{8})$/;

/** Throw STORE_INVALID_INFO unless `info` has a model name, a semver version and a lower-case hex SHA-256. */
export function checkVersionInfo(info: VersionInfo): void {
  if (typeof info !== 'object' || info === null) throw new StoreError('STORE_INVALID_INFO', 'info must be {name, version, sha256}');
  if (typeof info.name !== 'string' || !NAME_RE.test(info.name)) {
    throw new StoreError('STORE_INVALID_INFO', `info.name ${JSON.stringify(info.name)} is not a model name (${NAME_RE.source})`);
  }
  if (typeof info.version !== 'string' || !isSemver(info.version)) {
    throw new StoreError('STORE_INVALID_INFO', `info.version ${JSON.stringify(info.version)} is not a semver version`);
  }
  if (typeof info.sha256 !== 'string' || !SHA256_RE.test(info.sha256)) {
    throw new StoreError('STORE_INVALID_INFO', `info.sha256 ${JSON.stringify(info.sha256)} is not 64 lower-case hex digits`);
  }
}

/**
 * The store key and folder name of a version, `<name>@<version>-<sha8>`; the hash prefix keeps two
 * different packages that claim the same version apart.
 * @example
 * versionKey({ name: 'yolov5n-pets', version: '1.2.0', sha256 }) // 'yolov5n-pets@1.2.0-3f2a9c1d'
 */
export function versionKey(info: VersionInfo): string {
  checkVersionInfo(info);
  return `${info.name}@${info.version}-${info.sha256.slice(0, 8)}`;
}

/** Split a store key into name, version and hash prefix, or return undefined when it is not one. */
export function parseVersionKey(key: string): { name: string; version: string; sha8: string } | undefined {
  if (typeof key !== 'string') return undefined;
  const m = KEY_RE.exec(key);
  if (m === null || !isSemver(m[2])) return undefined;
  return { name: m[1], version: m[2], sha8: m[3] };
}
