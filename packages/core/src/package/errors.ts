import { KdEdgeError } from '../errors.js';

/** Every code a {@link PackageError} can carry; each refusal of a model package has its own. */
export type PackageErrorCode =
  | 'PACKAGE_MANIFEST_INVALID'
  | 'PACKAGE_MANIFEST_VERSION'
  | 'PACKAGE_UNSIGNED'
  | 'PACKAGE_SIGNATURE_INVALID'
  | 'PACKAGE_KEY_UNTRUSTED'
  | 'PACKAGE_KEY_INVALID'
  | 'PACKAGE_HASH_MISMATCH'
  | 'PACKAGE_SIZE_MISMATCH'
  | 'PACKAGE_PATH_ESCAPE'
  | 'PACKAGE_FILE_UNLISTED'
  | 'PACKAGE_FILE_MISSING'
  | 'PACKAGE_FILE_TOO_LARGE'
  | 'PACKAGE_FILE_UNSUPPORTED'
  | 'PACKAGE_ROLE_UNEXPECTED'
  | 'PACKAGE_TAR_CHECKSUM'
  | 'PACKAGE_TAR_TRUNCATED'
  | 'PACKAGE_TAR_INVALID'
  | 'PACKAGE_TAR_UNSUPPORTED'
  | 'PACKAGE_TAR_DUPLICATE'
  | 'PACKAGE_DEST_EXISTS'
  | 'PACKAGE_NOT_FOUND';

/** Details a {@link PackageError} may name: the manifest field or the package path at fault. */
export interface PackageErrorDetails {
  field?: string;
  path?: string;
  cause?: unknown;
}

/** A model package was refused or could not be built, read or written; `code` says which rule failed. */
export class PackageError extends KdEdgeError {
  declare readonly code: PackageErrorCode;
  /** The manifest field at fault (e.g. `input.shape[2]`), when one is. */
  readonly field?: string;
  /** The path inside the package at fault, when one is. */
  readonly path?: string;

  constructor(code: PackageErrorCode, message: string, details: PackageErrorDetails = {}) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    if (details.field !== undefined) this.field = details.field;
    if (details.path !== undefined) this.path = details.path;
  }
}
