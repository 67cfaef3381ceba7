import { PackageError } from './errors.js';

/** Default per-file limit of extraction and verification: 2 GiB, ONNX's protobuf ceiling. */
export const DEFAULT_MAX_FILE_BYTES = 2 * 1024 ** 3;
/** Default limit on a whole package: 8 GiB. */
export const DEFAULT_MAX_TOTAL_BYTES = 8 * 1024 ** 3;
/** Default limit on manifest.json: 4 MiB. */
export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 ** 2;

/** Throw 'PACKAGE_FILE_TOO_LARGE' when a file or the sum of all passes its limit; checked before any byte is read or written. */
export function checkSizeLimits(
  files: readonly { path: string; size: number }[],
  maxFileBytes: number,
  maxTotalBytes: number,
): void {
  let total = 0;
  for (const f of files) {
    if (f.size > maxFileBytes) {
      throw new PackageError('PACKAGE_FILE_TOO_LARGE', `${f.path} has ${f.size} bytes, more than the ${maxFileBytes} allowed per file`, { path: f.path });
    }
    total += f.size;
  }
  if (total > maxTotalBytes) {
    throw new PackageError('PACKAGE_FILE_TOO_LARGE', `the package has ${total} bytes in all, more than the ${maxTotalBytes} allowed`);
  }
}
