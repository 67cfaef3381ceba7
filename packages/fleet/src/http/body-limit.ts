import type { IncomingMessage } from 'node:http';
import { ApiError } from './api-error.js';

/** A human size: `1 MiB`, `2 GiB`, `512 bytes`. */
export function formatBytes(n: number): string {
  if (n >= 2 ** 30 && n % 2 ** 30 === 0) return `${n / 2 ** 30} GiB`;
  if (n >= 2 ** 20 && n % 2 ** 20 === 0) return `${n / 2 ** 20} MiB`;
  if (n >= 2 ** 10 && n % 2 ** 10 === 0) return `${n / 2 ** 10} KiB`;
  return `${n} bytes`;
}

/** The ApiError FLEET_TOO_LARGE for a body over `limit`. */
export function tooLarge(limit: number, what: string): ApiError {
  return new ApiError('FLEET_TOO_LARGE', `${what} is larger than the ${formatBytes(limit)} this server accepts`);
}

/** Refuse at once a body whose declared Content-Length is over `limit`, before a byte of it is read. */
export function checkDeclaredLength(req: IncomingMessage, limit: number, what: string): void {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) throw tooLarge(limit, what);
}
