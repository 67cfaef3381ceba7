import type { Manifest, PackageRole } from '@kd-edge/core/package';

/** A package held by the registry: its identity, the `.tar`'s hash and size, the signed manifest and where the `.tar` lies. */
export interface PackageRecord {
  name: string;
  version: string;
  /** SHA-256 of the `.tar`, lower-case hex. */
  sha256: string;
  /** Size of the `.tar` in bytes. */
  size: number;
  /**
   * What the package is for, from its signed manifest: `model` serves (rolled out in waves), `teacher` only labels
   * frames for on-device adaptation (pushed to devices one by one, never served).
   */
  role: PackageRole;
  /** The signed manifest, parsed. */
  manifest: Manifest;
  /** The manifest exactly as it is in the package (the retained `models/{name}/{version}/manifest` payload). */
  manifestJson: string;
  /** Absolute path of the stored `.tar`. */
  path: string;
  /** When it was first pushed, ms since the epoch. */
  pushedAt: number;
  /** Id of the trusted key that signed it (for an adapted package not yet promoted: the device's own key). */
  keyId: string;
  /**
   * Where an adapted package came from (issue 16): the device that made and signed it and the job that made it;
   * null for a package pushed by an operator.
   */
  origin: PackageOrigin | null;
  /** When an adapted package was promoted (re-signed with the fleet's key, ms since the epoch); null when it was not. */
  promotedAt: number | null;
}

/** The device and adaptation job an adapted package was pulled from. */
export interface PackageOrigin {
  deviceId: string;
  jobId: string;
}
