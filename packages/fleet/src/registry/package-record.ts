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
  /** Id of the trusted key that signed it. */
  keyId: string;
}
